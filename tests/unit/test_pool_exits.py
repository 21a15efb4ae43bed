"""How the pool words a worker's death when its template died: the same whichever of the run (its
worker's channel closing) and the pool (the template's control socket closing) sees it first."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from quest.pool import EXIT_REPORT_WAIT, WorkerPool

WORKER_PID = 2_000_000_000
"""A pid no process has: the worker is gone by the time its death is worded."""


def pool_with_a_template() -> tuple[WorkerPool, subprocess.Popen[Any]]:
    template = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pool = WorkerPool(quest=None, size=1)  # type: ignore[arg-type]
    pool._closed = True  # no new template is forked when this one dies
    pool._template_pid = template.pid
    return pool, template


def template_dies(pool: WorkerPool, template: subprocess.Popen[Any]) -> None:
    template.kill()
    with pool._changed:
        pool._template_gone_locked()  # reaps it
        pool._changed.notify_all()
    template.wait()  # already reaped: Popen learns it is gone


def test_a_run_that_gave_its_worker_back_first_still_learns_the_template_died() -> None:
    pool, template = pool_with_a_template()
    # The run saw its worker's channel close and gave the worker back: it is no longer busy when
    # the pool reads its template's death.
    template_dies(pool, template)
    began = time.monotonic()
    text = pool.exit_text(WORKER_PID, template.pid)
    assert text == "its template process died"
    assert time.monotonic() - began < EXIT_REPORT_WAIT / 2


def test_a_run_waiting_for_the_exit_report_learns_of_the_template_as_it_is_read() -> None:
    pool, template = pool_with_a_template()
    found: list[str] = []
    asking = threading.Thread(target=lambda: found.append(pool.exit_text(WORKER_PID, template.pid)))
    began = time.monotonic()
    asking.start()
    deadline = time.monotonic() + EXIT_REPORT_WAIT / 2
    while not pool._changed._waiters and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.001)  # until the run waits for the report
    assert pool._changed._waiters  # type: ignore[attr-defined]
    template_dies(pool, template)
    asking.join(EXIT_REPORT_WAIT * 2)
    assert found == ["its template process died"]
    assert time.monotonic() - began < EXIT_REPORT_WAIT


def test_a_worker_of_a_live_template_whose_report_never_comes_closed_its_channel() -> None:
    pool, template = pool_with_a_template()
    try:
        assert pool.exit_text(WORKER_PID, template.pid) == "it closed its channel"
    finally:
        template.kill()
        template.wait()
