"""Queued runs in worker processes driven by one dispatcher thread: every claimed run runs once
in a worker, ends read together are recorded together, runs of thread-isolated scripts still run
in threads, rows claimed ahead go back to the queue when the workers stay busy, and the thread
lets go once the queue is empty."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from quest import dispatch
from quest.app import Quest
from quest.dispatch import Dispatcher
from quest.enums import RunStatus
from quest.pool import Flight, WorkerPool
from quest.scheduler import Serve
from tests.integration.conftest import POOL_SCRIPTS, pooled_quest

pytestmark = pytest.mark.slow

SCRIPTS = {
    **POOL_SCRIPTS,
    "crash.py": """
        import ctypes, faulthandler, os
        from quest import Input, script

        @script(quest={"without_overlapping": False}, inputs={"how": Input(str)})
        def crash(inputs, ctx):
            if inputs.how == "exit":
                os._exit(3)
            faulthandler.disable()  # pytest's, inherited: its dump is not this test's output
            ctypes.string_at(0)
    """,
}
SLEEPY = {
    "sleepy.py": """
        import time
        from quest import script

        @script(quest={"without_overlapping": False, "timeout": "1 second"})
        def sleepy(inputs, ctx):
            time.sleep(60)
    """,
}
HERE = {
    "here.py": """
        import os
        from quest import script

        @script(quest={"without_overlapping": False, "isolation": "thread"})
        def here(inputs, ctx):
            return os.getpid()
    """,
}


@contextmanager
def serving(
    root: Path, *, size: int, concurrency: int | None = None, scripts: dict[str, str] = SCRIPTS
) -> Iterator[tuple[Quest, Serve]]:
    with pooled_quest(root, scripts, size=size) as app:
        pool = app.runner.pool
        serve = Serve(app, concurrency=concurrency or size, pool=pool)  # type: ignore[arg-type]
        try:
            yield app, serve
        finally:
            serve.shutdown(grace=10)


def until(condition: Any, what: str, seconds: float = 30.0) -> None:
    """Wait for *condition* (checked every 10 ms) for up to *seconds*."""
    for _ in range(int(seconds * 100)):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"never: {what}")


def drain_all(serve: Serve) -> None:
    """Claim until the queue is empty, joining the runs each claim started."""
    while serve.drain():
        serve.join(60)
    serve.join(60)


def rows(app: Quest, name: str) -> list[dict[str, Any]]:
    return app.store.history(name, limit=1000)


def test_a_drain_runs_every_row_once_in_the_workers(tmp_path: Path) -> None:
    with serving(tmp_path, size=2) as (app, serve):
        ids = [app.enqueue("pid") for _ in range(30)]
        drain_all(serve)
        found = {row["id"]: row for row in rows(app, "pid")}
        assert set(found) == set(ids)
        assert {row["status"] for row in found.values()} == {RunStatus.succeeded}
        assert os.getpid() not in {row["result"] for row in found.values()}
        assert isinstance(serve._dispatcher, Dispatcher)
        assert serve._queued_active == 0
        assert serve._workers.busy == 0, "the dispatcher kept its thread with nothing to do"


def test_ends_read_together_are_recorded_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    monkeypatch.setenv("QUEST_TEST_RELEASE", str(release))
    batches: list[int] = []
    finish = Dispatcher._finish
    wait = Dispatcher._wait

    def counted(self: Dispatcher, settled: Any, **kwargs: Any) -> Any:
        batches.append(len(settled))
        return finish(self, settled, **kwargs)

    def all_answered(self: Dispatcher, flights: Any) -> None:
        if len(flights) == 3:
            for flight in flights:
                flight.worker.channel.poll(30)  # every worker has answered
        wait(self, flights)

    monkeypatch.setattr(Dispatcher, "_finish", counted)
    monkeypatch.setattr(Dispatcher, "_wait", all_answered)
    with serving(tmp_path, size=3) as (app, serve):
        ids = [app.enqueue("hold") for _ in range(3)]
        assert len(serve.drain()) == 3
        until(lambda: len(app.runner.pool._busy) == 3, "three runs in workers")
        release.touch()
        serve.join(60)
        assert batches == [3]
        assert {row["id"] for row in rows(app, "hold") if row["status"] == "succeeded"} == set(ids)


def test_runs_of_a_thread_isolated_script_run_in_this_process(tmp_path: Path) -> None:
    with serving(tmp_path, size=2, scripts={**SCRIPTS, **HERE}) as (app, serve):
        here = [app.enqueue("here") for _ in range(3)]
        there = [app.enqueue("pid") for _ in range(3)]
        drain_all(serve)
        results = {row["id"]: row["result"] for row in rows(app, "here") + rows(app, "pid")}
        assert {results[i] for i in here} == {os.getpid()}
        assert os.getpid() not in {results[i] for i in there}
        # A row of a thread-isolated script goes to a thread of its own, holding a queue slot:
        # no row is claimed ahead, which would run beyond the serve's concurrency.
        assert serve._dispatcher is not None and not serve._dispatcher._all_in_workers


def test_rows_claimed_ahead_go_back_when_the_workers_stay_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    monkeypatch.setenv("QUEST_TEST_RELEASE", str(release))
    monkeypatch.setattr(dispatch, "HOLD_AHEAD", 3.0)
    with serving(tmp_path, size=1) as (app, serve):
        first = app.enqueue("pid")
        held = app.enqueue("hold")
        behind = app.enqueue("pid")
        app.runner.pool._typical = 0.0  # runs have been brief: the end of the first claims ahead
        assert serve.drain() == [first]
        until(lambda: app.store.get_run(held)["status"] == "running", "the held run started")
        # Claimed with it, by the first run's end, though no worker is free for it.
        assert app.store.get_run(behind)["status"] == "running"
        # The worker stays busy: the row claimed ahead goes back, unowned, due as it was.
        until(lambda: app.store.get_run(behind)["status"] == "queued", "the row claimed ahead back")
        assert app.store.get_run(behind)["owner_pid"] is None
        # Its queue slot is freed just after the row goes back (the dispatcher's next step).
        until(lambda: serve._queued_active == 1, "the queue slot of the row given back freed")
        release.touch()
        serve.join(60)
        drain_all(serve)
        statuses = {row["id"]: row["status"] for row in rows(app, "pid") + rows(app, "hold")}
        assert statuses == {first: "succeeded", held: "succeeded", behind: "succeeded"}


def test_a_turn_that_fails_is_logged_and_the_runs_it_held_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wait = Dispatcher._wait
    failed: list[int] = []

    def once(self: Dispatcher, flights: Any) -> None:
        if flights and not failed:
            failed.append(len(flights))
            raise RuntimeError("a turn went wrong")
        wait(self, flights)

    monkeypatch.setattr(Dispatcher, "_wait", once)
    monkeypatch.setattr(dispatch, "FAILED_TURN_PAUSE", 0.0)
    with serving(tmp_path, size=2) as (app, serve):
        ids = [app.enqueue("pid") for _ in range(6)]
        drain_all(serve)
        assert failed, "no turn failed"
        assert "the queue's dispatcher failed" in caplog.text
        statuses = {row["id"]: row["status"] for row in rows(app, "pid")}
        assert statuses == dict.fromkeys(ids, "succeeded")
        assert serve._queued_active == 0


def test_workers_that_die_mid_drain_fail_their_runs_only(tmp_path: Path) -> None:
    with serving(tmp_path, size=2) as (app, serve):
        exits = [app.enqueue("crash", {"how": "exit"}) for _ in range(2)]
        segfaults = [app.enqueue("crash", {"how": "segfault"}) for _ in range(2)]
        fine = [app.enqueue("pid") for _ in range(10)]
        drain_all(serve)
        found = {row["id"]: row for row in rows(app, "crash") + rows(app, "pid")}
        assert {found[i]["error"] for i in exits} == {
            "WorkerDied: worker process died: exit code 3"
        }
        assert {found[i]["error"] for i in segfaults} == {
            "WorkerDied: worker process died: SIGSEGV"
        }
        assert {found[i]["status"] for i in exits + segfaults} == {"failed"}
        assert {found[i]["status"] for i in fine} == {"succeeded"}
        assert serve._queued_active == 0
        assert app.runner.pool.deaths == 4


def test_a_run_that_cannot_be_handed_to_its_worker_fails_and_the_worker_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch = WorkerPool.launch
    refused: list[str] = []

    def once(self: WorkerPool, worker: Any, script: Any, *rest: Any) -> Any:
        if not refused:
            refused.append(worker.pid)
            raise RuntimeError("the job could not be built")
        return launch(self, worker, script, *rest)

    monkeypatch.setattr(WorkerPool, "launch", once)
    with serving(tmp_path, size=1) as (app, serve):
        ids = [app.enqueue("pid") for _ in range(3)]
        drain_all(serve)
        found = {row["id"]: row for row in rows(app, "pid")}
        assert found[ids[0]]["status"] == "failed"
        assert found[ids[0]]["error"] == "RuntimeError: the job could not be built"
        assert {found[i]["status"] for i in ids[1:]} == {"succeeded"}
        assert refused[0] not in {found[i]["result"] for i in ids[1:]}, "the worker was reused"
        assert serve._queued_active == 0
        assert not app.runner.pool._busy


def test_ends_whose_transaction_fails_are_recorded_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Serve, *args: Any) -> Any:
        raise RuntimeError("the claim went wrong")

    with serving(tmp_path, size=2) as (app, serve):
        ids = [app.enqueue("pid") for _ in range(4)]
        monkeypatch.setattr(Serve, "_claim_at_commit", broken)
        drain_all(serve)
        assert "recording each alone" in caplog.text
        statuses = {row["id"]: row["status"] for row in rows(app, "pid")}
        assert statuses == dict.fromkeys(ids, "succeeded")
        assert serve._queued_active == 0


def test_rows_claimed_ahead_are_not_given_back_twice_after_shutdown_gave_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(tmp_path, size=1) as (app, serve):
        dispatcher = Dispatcher(serve, app.runner.pool)  # type: ignore[arg-type]
        given: list[list[Any]] = []
        monkeypatch.setattr(serve, "_give_back", lambda rows: given.append(list(rows)))
        row = {"id": "a" * 32, "name": "pid"}
        waiting: Any = deque([row])
        serve._queued_active = serve.concurrency + 1
        serve._released = True
        dispatcher._stalled_at = -1e9
        dispatcher._stalled(waiting)
        assert given == [[]], "a row shutdown gave back went back to the queue again"
        assert not waiting
        assert serve._queued_active == serve.concurrency
        serve._queued_active = 0
        dispatcher.close()


def test_a_row_waiting_for_a_busy_worker_begins_and_the_heartbeat_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows claimed for free queue slots may find every worker busy (with scheduled runs, here
    with a longer queued one): after ``HOLD_AHEAD`` they begin, so that the heartbeat renews
    their rows and no other serve takes them for abandoned while they wait."""
    release = tmp_path / "release"
    monkeypatch.setenv("QUEST_TEST_RELEASE", str(release))
    monkeypatch.setattr(dispatch, "HOLD_AHEAD", 0.2)
    with serving(tmp_path, size=1, concurrency=2) as (app, serve):
        app.runner.pool._typical = 1.0  # runs have been long: nothing is claimed ahead
        held = app.enqueue("hold")
        waiting = app.enqueue("pid")
        assert sorted(serve.drain()) == sorted([held, waiting])
        until(lambda: waiting in app.runner.active_runs(), "the waiting run begun")
        assert app.store.get_run(waiting)["status"] == "running"
        assert app.runner._active[waiting].watched, "the heartbeat does not look after it"
        release.touch()
        serve.join(60)
        statuses = {row["id"]: row["status"] for row in rows(app, "pid") + rows(app, "hold")}
        assert statuses == {held: "succeeded", waiting: "succeeded"}
        assert serve._queued_active == 0


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_timeout_comes_on_time_while_the_dispatcher_waits_for_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher may wait for the database for as long as SQLite's busy timeout (another
    process holding the write lock): its guard enforces the timeouts of the runs already in the
    workers meanwhile."""
    stuck, release = threading.Event(), threading.Event()
    begin = Dispatcher._begin

    def held_up(self: Dispatcher, row: dict[str, Any]) -> Any:
        if row["name"] == "pid":
            stuck.set()
            release.wait(60)
        return begin(self, row)

    monkeypatch.setattr(Dispatcher, "_begin", held_up)
    guarded: list[float] = []
    due = Flight.due

    def counted(self: Flight, now: float) -> float:
        if threading.current_thread().name == "quest-dispatch-guard":
            guarded.append(now)
        return due(self, now)

    monkeypatch.setattr(Flight, "due", counted)
    with serving(tmp_path, size=2, scripts={**SCRIPTS, **SLEEPY}) as (app, serve):
        late = app.enqueue("sleepy")
        assert serve.drain() == [late]
        dispatcher = serve._dispatcher
        assert dispatcher is not None
        until(lambda: dispatcher._flights, "the sleepy run in a worker")
        pid = next(iter(dispatcher._flights)).worker.pid
        waiting = app.enqueue("pid")
        assert serve.drain() == [waiting]
        assert stuck.wait(30), "the dispatcher never began the second run"
        try:
            until(lambda: gone(pid), "the timed-out run's worker ended", seconds=10)
            assert not release.is_set()
            # The guard checks every GUARD_EVERY while the dispatcher is away, no more often.
            held_for = time.monotonic() - guarded[0]
            assert len(guarded) <= held_for / dispatch.GUARD_EVERY + 2, guarded
        finally:
            release.set()
        serve.join(60)
        late_row = app.store.get_run(late)
        assert late_row["status"] == "timed_out"
        assert late_row["error"] == "RunTimeout: exceeded its timeout of 1 s"
        assert app.store.get_run(waiting)["status"] == "succeeded"
        assert serve._queued_active == 0
