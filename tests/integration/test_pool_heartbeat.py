"""Runs in worker processes and the runner's heartbeat: a run that ends within a moment never
wakes it; a longer one is handed to it, and its lease and heartbeat are renewed while it runs,
however much it logs meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from quest.app import Quest
from quest.enums import RunStatus
from quest.pool import WorkerPool
from quest.runner import WATCH_AFTER, Runner
from tests.integration.conftest import pooled_quest

pytestmark = pytest.mark.slow

SCRIPTS = {
    "quick.py": """
        from quest import script

        @script()
        def quick(inputs, ctx):
            return "done"
    """,
    "brief.py": """
        from quest import script

        @script(quest={"lease_ttl": "1 second"})
        def brief(inputs, ctx):
            return "done"
    """,
    "hold.py": """
        import os, time
        from quest import script

        @script(inputs={"release": {"type": "string", "required": True}})
        def hold(inputs, ctx):
            end = time.monotonic() + 10
            while not os.path.exists(inputs.release) and time.monotonic() < end:
                time.sleep(0.01)
            return "done"
    """,
    "sleepy.py": """
        import pathlib, time
        from quest import script

        @script(inputs={"done": {"type": "string", "required": True}})
        def sleepy(inputs, ctx):
            time.sleep(5)
            pathlib.Path(inputs.done).touch()
            return "done"
    """,
    "chatty.py": """
        import time
        from quest import script

        @script(quest={"lease_ttl": "3 seconds"})
        def chatty(inputs, ctx):
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                ctx.log.info("still here")
                time.sleep(0.02)
            return "done"
    """,
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Quest]:
    with pooled_quest(tmp_path, SCRIPTS, size=1) as instance:
        yield instance


def test_runs_that_end_within_a_moment_never_wake_the_heartbeat(app: Quest) -> None:
    for _ in range(5):
        outcome = app.run("quick", {})
        assert outcome.ok, outcome.error
        assert (outcome.duration_ms or 0) < WATCH_AFTER * 1000
    assert app.runner._heartbeat is None


def test_a_longer_run_has_its_lease_and_heartbeat_renewed_while_it_logs(app: Quest) -> None:
    outcome = app.run("chatty", {})
    assert outcome.ok, outcome.error
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    # A lease of 3 s is renewed every second once the heartbeat looks after the run.
    assert row["heartbeat_at"] - row["started_at"] > timedelta(seconds=0.5), row
    assert app.runner._heartbeat is not None


def test_a_run_with_a_short_lease_is_looked_after_from_its_start(app: Quest) -> None:
    outcome = app.run("brief", {})
    assert outcome.ok, outcome.error
    assert (outcome.duration_ms or 0) < WATCH_AFTER * 1000
    assert app.runner._heartbeat is not None


def test_a_run_waiting_for_a_worker_is_looked_after_meanwhile(
    app: Quest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched: list[str] = []
    watch = Runner._watch

    def noting(self: Runner, active: Any, *, adding: bool = False) -> None:
        watched.append(active.run_id)
        watch(self, active, adding=adding)

    monkeypatch.setattr(Runner, "_watch", noting)
    pool = app.runner.pool
    assert pool is not None
    release = tmp_path / "release"
    held = threading.Thread(target=app.run, args=("hold", {"release": str(release)}))
    held.start()
    try:
        until(lambda: len(pool._busy) == 1 and not pool._idle, "the one worker to be busy")
        outcomes: list[Any] = []
        waiting = threading.Thread(target=lambda: outcomes.append(app.run("quick", {})))
        waiting.start()
        waiting.join(10)
        assert outcomes and outcomes[0].ok, outcomes
        assert outcomes[0].run_id in watched
    finally:
        release.touch()
        held.join(10)


def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_run_cancelled_while_it_waits_for_a_worker_is_stopped_at_once(
    app: Quest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hand = WorkerPool._hand

    def cancelled_meanwhile(self: WorkerPool, job: Any, waiting: Any = None, **how: Any) -> Any:
        assert app.runner.cancel(job.run_id, "tester")
        return hand(self, job, waiting, **how)

    monkeypatch.setattr(WorkerPool, "_hand", cancelled_meanwhile)
    done = tmp_path / "done"
    outcome = app.run("sleepy", {"done": str(done)})
    assert outcome.status is RunStatus.cancelled, outcome
    assert "tester" in (outcome.error or "")
    assert not done.exists(), "the script ran to its end"
