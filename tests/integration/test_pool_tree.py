"""A stopped run leaves nothing behind: the processes its script started end with its worker,
those that left the worker's process group for a session of their own and the daemons that forked
twice included; and a worker never keeps the orphans it adopts as zombies."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from quest.enums import RunStatus
from tests.integration.conftest import pooled_quest

pytestmark = pytest.mark.slow

DAEMON = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1] + ".tmp", "w") as mark:
    mark.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
"""

SCRIPTS = {
    "escapee.py": f"""
        import subprocess, sys, time
        from pathlib import Path
        from quest import Input, script

        DAEMON = {DAEMON!r}

        @script(
            quest={{"without_overlapping": False, "timeout": "2 seconds"}},
            inputs={{"mark": Input(str), "wait": Input(bool, default=True)}},
        )
        def escapee(inputs, ctx):
            mark = Path(inputs.mark)
            alone = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
            )
            subprocess.run([sys.executable, "-c", DAEMON, str(mark) + ".daemon"], check=True)
            for _ in range(500):
                if Path(str(mark) + ".daemon").exists():
                    break
                time.sleep(0.01)
            mark.write_text(str(alone.pid))
            if inputs.wait:
                time.sleep(60)
    """,
    "orphans.py": """
        import os, subprocess, sys
        from quest import script

        @script(quest={"without_overlapping": False})
        def orphans(inputs, ctx):
            for _ in range(3):
                # Each forks a child that outlives it by a moment: the worker adopts the child.
                subprocess.run(
                    [sys.executable, "-c",
                     "import os, time\\nif os.fork() == 0:\\n    time.sleep(0.2)\\nos._exit(0)"],
                    check=True,
                )
            return os.getpid()
    """,
}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def until(condition: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def test_a_timed_out_run_ends_the_processes_that_left_its_worker_s_group(tmp_path: Path) -> None:
    mark = tmp_path / "alone.pid"
    daemon_mark = Path(f"{mark}.daemon")
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            outcome = app.run("escapee", {"mark": str(mark)})
            assert outcome.status is RunStatus.timed_out, outcome
            pids = [int(mark.read_text()), int(daemon_mark.read_text())]
            until(lambda: all(gone(pid) for pid in pids), "the escaped processes ended")
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_run_that_ends_leaves_what_it_started_running(tmp_path: Path) -> None:
    """Only a stopped run's worker ends what its script started: a run that ends on its own may
    leave a process behind, as it would outside quest."""
    mark = tmp_path / "alone.pid"
    daemon_mark = Path(f"{mark}.daemon")
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            outcome = app.run("escapee", {"mark": str(mark), "wait": False})
            assert outcome.status is RunStatus.succeeded, outcome
            pids = [int(mark.read_text()), int(daemon_mark.read_text())]
            assert not [pid for pid in pids if gone(pid)]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_collects_the_orphans_it_adopted(tmp_path: Path) -> None:
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        first = app.run("orphans")
        assert first.status is RunStatus.succeeded, first
        worker = psutil.Process(first.result)
        time.sleep(0.5)  # the adopted children end 0.2 s after their parents
        second = app.run("orphans")
        assert second.result == worker.pid
        assert not [child for child in worker.children() if child.status() == "zombie"]
