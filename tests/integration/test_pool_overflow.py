"""Runs that find every worker of the pool busy: short runs due at one instant share the workers
instead of forking one each, a run whose workers stay busy gets one of its own after
``FIRE_WAIT`` (beyond ``size`` too: a full queue never holds a scheduled fire for long), and
queued runs get their workers at once, up to ``size``."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from quest import pool
from quest.enums import Trigger
from quest.runner import RunRequest
from tests.integration.conftest import POOL_SCRIPTS, pooled_quest

pytestmark = pytest.mark.slow

SCRIPTS = POOL_SCRIPTS


def together(app: Any, count: int) -> list[Any]:
    """*count* runs of ``pid`` started at one instant from as many threads; their outcomes."""
    start = threading.Barrier(count)
    outcomes: list[Any] = [None] * count

    def one(i: int) -> None:
        start.wait()
        outcomes[i] = app.run("pid")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_short_runs_due_together_share_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "FIRE_WAIT", 30.0)
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        outcomes = together(app, 6)
        assert all(o is not None and o.ok for o in outcomes), outcomes
        assert len({o.result for o in outcomes}) == 1, "a worker was forked beyond size"
        assert len(app.runner.pool.pids) == 1


def test_a_run_whose_workers_stay_busy_gets_one_beyond_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    monkeypatch.setenv("QUEST_TEST_RELEASE", str(release))
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        held: list[Any] = []
        holder = threading.Thread(target=lambda: held.append(app.run("hold")))
        holder.start()
        try:
            busy = app.runner.pool
            for _ in range(3000):
                if busy._busy:
                    break
                threading.Event().wait(0.01)
            assert busy._busy, "the first run never reached its worker"
            quick = app.run("pid")
            assert quick.ok, quick.error
        finally:
            release.touch()
            holder.join(60)
        assert held and held[0].ok, held
        assert quick.result != held[0].result, "the run waited for the busy worker"
        assert len(set(app.runner.pool.pids)) == 2


def test_queued_runs_get_their_workers_at_once_up_to_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "FIRE_WAIT", 30.0)
    release = tmp_path / "release"
    monkeypatch.setenv("QUEST_TEST_RELEASE", str(release))
    with pooled_quest(tmp_path, SCRIPTS, size=3) as app:
        held: list[Any] = []
        request = RunRequest(trigger=Trigger.enqueued)
        threads = [
            threading.Thread(target=lambda: held.append(app.runner.run("hold", {}, request)))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        busy = app.runner.pool
        try:
            for _ in range(1000):
                if len(busy._busy) == 3:
                    break
                threading.Event().wait(0.01)
            assert len(busy._busy) == 3, "a queued run waited for a busy worker"
        finally:
            release.touch()
            for thread in threads:
                thread.join(60)
        assert len(held) == 3 and all(o.ok for o in held), held
        assert len({o.result for o in held}) == 3


def test_a_wait_that_fails_on_the_supervisor_side_ends_the_worker_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: pool.Flight, now: float) -> float:
        raise RuntimeError("the wait went wrong")

    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        workers = app.runner.pool
        monkeypatch.setattr(pool.Flight, "due", broken)
        outcome = app.run("pid")
        assert not outcome.ok
        assert outcome.error == "RuntimeError: the wait went wrong"
        assert not workers._busy, "the worker stayed checked out"
        assert workers.deaths == 1
        monkeypatch.undo()
        assert app.run("pid").ok


def kept_flights(monkeypatch: pytest.MonkeyPatch) -> list[pool.Flight]:
    """Every :class:`~quest.pool.Flight` the pools make from now on, in order."""
    flights: list[pool.Flight] = []
    make = pool.WorkerPool._flight

    def kept(self: pool.WorkerPool, *args: Any) -> pool.Flight:
        flights.append(make(self, *args))
        return flights[-1]

    monkeypatch.setattr(pool.WorkerPool, "_flight", kept)
    return flights


def test_a_stop_asked_after_the_run_ended_leaves_its_worker_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that races a run's end must not kill the worker, which runs the next run."""
    flights = kept_flights(monkeypatch)
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        first = app.run("pid")
        assert first.ok
        flights[0].stop("cancel")  # too late: the run has ended
        second = app.run("pid")
        assert second.ok, second.error
        assert second.result == first.result, "the worker was killed after its run ended"
        assert app.runner.pool.deaths == 0


def test_a_kill_due_after_the_run_ended_leaves_its_worker_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill after an ignored cancel, due when the run has ended already (a dispatcher's
    guard may get to it late), must not kill the worker either."""
    flights = kept_flights(monkeypatch)
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        first = app.run("pid")
        assert first.ok
        flights[0].stop.kill_at = time.monotonic() - 1.0
        flights[0].due(time.monotonic())
        assert flights[0].stop.kill_at is None
        second = app.run("pid")
        assert second.ok, second.error
        assert second.result == first.result, "the worker was killed after its run ended"
        assert app.runner.pool.deaths == 0
