"""Ending a worker whose pid may be another process's by now touches nothing but what is left of
its process group."""

from __future__ import annotations

import subprocess
import sys

from quest.pool import _kill_worker, boot_clock


def test_a_worker_known_to_have_ended_is_not_signalled_through_its_old_pid() -> None:
    # A process standing for one that took the ended worker's pid (not a group leader).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _kill_worker(other.pid, boot_clock() - 60, gone=True)
        assert other.poll() is None, "a process that took an ended worker's pid was killed"
    finally:
        other.kill()
        other.wait(10)


def test_a_live_worker_being_stopped_is_ended() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        _kill_worker(worker.pid, boot_clock())
        assert worker.wait(10) < 0
    finally:
        worker.kill()
