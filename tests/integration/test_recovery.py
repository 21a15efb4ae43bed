"""Crash recovery: a run whose process stopped heartbeating is marked abandoned and retried.

Another process's run is simulated as it looks in the database: a row claimed by a host that
never heartbeats again. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from quest import Quest, RunStatus, Trigger, script
from quest.runner import new_run_id
from quest.scheduler import Serve
from quest.signals import job_complete
from quest.testing import FrozenClock, captured_signals, temporary_quest

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = 30.0

attempts: list[int] = []


@script(quest={"attempts": 3, "backoff": {"delay": "5 seconds"}})
def import_orders(inputs: Any, ctx: Any) -> dict[str, int]:
    attempts.append(ctx.attempt)
    return {"attempt": ctx.attempt}


@script
def once_only(inputs: Any, ctx: Any) -> None:
    attempts.append(ctx.attempt)


@script(quest={"interval": "1 hour", "attempts": 2})
def hourly(inputs: Any, ctx: Any) -> None:
    attempts.append(ctx.attempt)


quick_serves: list[Serve] = []
judged: list[list[str]] = []


@script(quest={"lease_ttl": "1 second"})
async def sleeps_on(inputs: Any, ctx: Any) -> None:
    await asyncio.sleep(30)


@script(quest={"lease_ttl": "1 second"})
def brief(inputs: Any, ctx: Any) -> None:
    return None


@script
def long_manual(inputs: Any, ctx: Any) -> None:
    """Runs 1.6 s, asking a serve with a 1.2 s lease TTL to recover abandoned runs meanwhile."""
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        judged.append(quick_serves[0].recover())
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def clean() -> None:
    attempts.clear()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path,
        scripts=[import_orders, once_only, hourly],
        database_url=database_url,
        clock=clock,
        lease_ttl=TTL,
    ) as instance:
        yield instance


@pytest.fixture
def serve(app: Quest) -> Serve:
    server = Serve(app, inline=True)
    server.start(NOW)
    return server


def claimed_elsewhere(app: Quest, name: str) -> str:
    """Queue a run of *name* and let a process on another host claim it (and then die)."""
    run_id = app.enqueue(name)
    [row] = app.store.claim_queued(now=NOW, limit=1, owner_host="worker-7", owner_pid=4242)
    assert row["id"] == run_id
    return run_id


def test_a_run_that_stopped_heartbeating_is_abandoned_and_retried(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = claimed_elsewhere(app, "import-orders")
    clock.set(NOW + timedelta(seconds=TTL - 1))
    assert serve.recover(clock.now()) == [], "still within the lease TTL"

    later = NOW + timedelta(seconds=TTL + 1)
    clock.set(later)
    with captured_signals() as events:
        assert serve.recover(later) == [run_id]
    row = app.store.get_run(run_id)
    assert row is not None
    assert row["status"] is RunStatus.abandoned
    assert row["finished_at"] == later
    assert "worker-7:4242 stopped heartbeating" in (row["error"] or "")

    [event] = events.events("job:error")
    assert event.status is RunStatus.abandoned
    assert event.run_id == run_id
    assert event.will_retry
    assert event.retry_at == later + timedelta(seconds=5)

    [retry] = app.store.history(statuses=[RunStatus.queued])
    assert (retry["attempt"], retry["trigger"], retry["root_id"]) == (2, Trigger.retry, run_id)
    assert retry["run_after"] == later + timedelta(seconds=5)

    clock.set(later + timedelta(seconds=5))
    assert serve.drain(clock.now()) == [retry["id"]]
    assert attempts == [2]
    assert app.store.get_run(retry["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert serve.recover(clock.now() + timedelta(hours=1)) == [], "recovered once"


def test_an_abandoned_run_without_attempts_left_is_not_retried(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = claimed_elsewhere(app, "once-only")
    clock.set(NOW + timedelta(minutes=5))
    with captured_signals() as events:
        assert serve.recover(clock.now()) == [run_id]
    assert app.store.get_run(run_id)["status"] is RunStatus.abandoned  # type: ignore[index]
    assert not events.events("job:error")[0].will_retry
    assert app.store.count_runs(status=RunStatus.queued) == 0


def test_a_live_run_keeps_heartbeating_and_is_not_abandoned(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = claimed_elsewhere(app, "import-orders")
    for step in range(1, 5):
        clock.set(NOW + timedelta(seconds=step * TTL / 2))
        app.store.update_run(run_id, {"heartbeat_at": clock.now()})
        assert serve.recover(clock.now()) == []
    assert app.store.get_run(run_id)["status"] is RunStatus.running  # type: ignore[index]


def test_serve_recovers_on_its_own_as_it_ticks(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    stale_since = NOW - timedelta(minutes=10)
    run_id = new_run_id()
    app.store.insert_run(
        {
            "id": run_id,
            "name": "hourly",
            "status": RunStatus.running,
            "trigger": Trigger.scheduled,
            "attempt": 1,
            "max_attempts": 2,
            "root_id": run_id,
            "scheduled_for": stale_since,
            "created_at": stale_since,
            "started_at": stale_since,
            "heartbeat_at": stale_since,
            "owner_host": "worker-7",
            "owner_pid": 4242,
        }
    )
    serve.tick(NOW)
    row = app.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.abandoned
    retries = [r for r in app.store.history("hourly") if r["trigger"] is Trigger.retry]
    assert len(retries) == 1
    assert retries[0]["scheduled_for"] == stale_since
    assert retries[0]["status"] is RunStatus.succeeded, "due at once (no backoff), drained"
    assert attempts.count(2) == 1


def test_two_serves_recover_a_run_once(
    app: Quest, clock: FrozenClock, tmp_path: Path, database_url: str
) -> None:
    run_id = claimed_elsewhere(app, "import-orders")
    (tmp_path / "other").mkdir()
    with temporary_quest(
        tmp_path / "other",
        scripts=[import_orders, once_only, hourly],
        database_url=database_url,
        clock=clock,
        lease_ttl=TTL,
    ) as other:
        clock.set(NOW + timedelta(minutes=1))
        first = Serve(app, inline=True).recover(clock.now())
        second = Serve(other, inline=True).recover(clock.now())
    assert (first, second) == ([run_id], [])
    assert app.store.count_runs(status=RunStatus.queued) == 1


def test_this_process_runs_are_not_abandoned_by_its_own_heartbeat_gap(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    """A finished run is never touched by recovery, whatever its last heartbeat."""
    outcome = app.run("import-orders")
    clock.set(NOW + timedelta(hours=2))
    assert serve.recover(clock.now()) == []
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["status"] is RunStatus.succeeded
    assert row["owner_pid"] == os.getpid()


def test_a_dead_owner_s_run_that_someone_cancelled_ends_cancelled_not_retried(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = claimed_elsewhere(app, "import-orders")
    result = app.cancel(run_id, by="ops@laptop")
    assert result.outcome.value == "requested"
    clock.advance(timedelta(seconds=TTL + 1))
    assert serve.recover() == [run_id]
    row = app.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.cancelled
    assert "ops@laptop" in (row["error"] or "")
    assert app.store.count_runs("import-orders") == 1, "a cancelled run is not retried"


def test_a_late_end_does_not_overwrite_another_serve_s_verdict(
    tmp_path: Path, database_url: str
) -> None:
    """A supervisor frozen past the TTL finds its run taken for abandoned: its end is not written
    over that (the retry the other serve queued is the run of record)."""

    @script
    def frozen(inputs: Any, ctx: Any) -> str:
        # While this runs, another serve decides its owner is dead.
        with ctx.db.begin() as session:
            session.execute(
                text("UPDATE quest_job_log SET status = 'abandoned' WHERE id = :id"),
                {"id": ctx.run_id},
            )
        return "late"

    with temporary_quest(tmp_path, scripts=[frozen], database_url=database_url) as app:
        outcome = app.run("frozen")
        row = app.store.get_run(outcome.run_id)
    assert outcome.status is RunStatus.succeeded
    assert row is not None and row["status"] is RunStatus.abandoned
    assert row["result"] is None


def owner_node(app: Quest, *, lease_ttl: float) -> str:
    """Register the serve of :func:`claimed_elsewhere`'s owner as a node with *lease_ttl*."""
    return app.store.register_node(
        host="worker-7",
        pid=4242,
        version="test",
        now=NOW,
        concurrency=4,
        isolation="process",
        lease_ttl=lease_ttl,
    )


def test_a_run_is_judged_by_its_owner_s_heartbeat_rate_when_that_is_slower(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    """A serve with a shorter lease TTL than the run's owner leaves the run alone until the
    owner's own TTL has passed since its last beat: the owner beats at a third of its TTL."""
    slower = 4 * TTL
    run_id = claimed_elsewhere(app, "import-orders")
    owner_node(app, lease_ttl=slower)
    clock.set(NOW + timedelta(seconds=slower - 1))
    assert serve.recover(clock.now()) == [], "within the owner's lease TTL"
    clock.set(NOW + timedelta(seconds=slower + 1))
    assert serve.recover(clock.now()) == [run_id]
    assert app.store.get_run(run_id)["status"] is RunStatus.abandoned  # type: ignore[index]


def test_a_stopped_owner_s_run_is_judged_by_the_serve_s_own_ttl(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = claimed_elsewhere(app, "import-orders")
    app.store.stop_node(owner_node(app, lease_ttl=4 * TTL), NOW)
    clock.set(NOW + timedelta(seconds=TTL + 1))
    assert serve.recover(clock.now()) == [run_id]


def test_a_slower_owner_serve_is_not_outwaited_by_a_faster_one(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """Two serves on one database, the owner with the default lease TTL and another with a
    short one: the other never abandons the owner's running run while the owner beats."""
    with (
        temporary_quest(
            tmp_path / "owner", scripts=[once_only], database_url=database_url, clock=clock
        ) as owner,
        temporary_quest(
            tmp_path / "quick",
            scripts=[once_only],
            database_url=database_url,
            clock=clock,
            lease_ttl=5.0,
        ) as quick,
    ):
        mine = Serve(owner, inline=True)
        mine.start(NOW)
        run_id = owner.enqueue("once-only")
        [row] = owner.store.claim_queued(
            now=NOW, limit=1, owner_host=owner.runner.owner.split(":")[0], owner_pid=os.getpid()
        )
        assert row["id"] == run_id
        other = Serve(quick, inline=True)
        other.start(NOW)
        clock.set(NOW + timedelta(seconds=owner.settings.lease_ttl / 3 + 1))
        assert other.recover(clock.now()) == [], "the owner beats every 10 s; 5 s is no news"


def test_q0008_adds_each_node_s_lease_ttl_and_takes_it_back(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from quest.migrate import config
    from quest.store import Store, make_engine

    store = Store(make_engine(database_url))
    try:

        def columns() -> set[str]:
            return {column["name"] for column in inspect(store.engine).get_columns("quest_nodes")}

        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0007")
        assert "lease_ttl" not in columns()
        store.ensure_schema()
        assert "lease_ttl" in columns()
        node = store.register_node(
            host="h", pid=1, version="v", now=NOW, concurrency=1, isolation="thread", lease_ttl=9.0
        )
        assert [n["lease_ttl"] for n in store.nodes() if n["id"] == node] == [9.0]
        with store.writer.begin() as connection:
            command.downgrade(config(store, None, connection), "q0007")
        assert "lease_ttl" not in columns()
    finally:
        store.dispose()


def test_a_manual_run_beats_as_often_as_the_quickest_serve_judges_it(
    tmp_path: Path, database_url: str
) -> None:
    """A ``quest run`` whose lease TTL (60 s) is longer than a serve's on the same database
    (1.2 s) heartbeats at a third of the serve's: that serve never takes it for abandoned."""
    judged.clear()
    with (
        temporary_quest(
            tmp_path / "serve", scripts=[long_manual], database_url=database_url, lease_ttl=1.2
        ) as quick,
        temporary_quest(
            tmp_path / "manual", scripts=[long_manual], database_url=database_url, lease_ttl=60.0
        ) as manual,
    ):
        quick_serves[:] = [Serve(quick, inline=True)]
        quick_serves[0].start()
        outcome = manual.run("long-manual")
        row = manual.store.get_run(outcome.run_id)
    assert row is not None and row["status"] is RunStatus.succeeded, row
    assert len(judged) >= 10 and not any(judged), judged


def test_a_run_another_serve_took_for_abandoned_is_stopped_where_it_still_runs(
    tmp_path: Path, database_url: str
) -> None:
    """This process went silent (stopped, or cut off from the database) and another serve
    marked its run ``abandoned`` (and queued its retry): at its next heartbeat, this process
    finds the row no longer running and stops the run, which its retry replaces."""
    with temporary_quest(tmp_path, scripts=[sleeps_on], database_url=database_url) as app:
        outcomes: list[Any] = []
        runner = threading.Thread(target=lambda: outcomes.append(app.run("sleeps-on")))
        runner.start()
        deadline = time.monotonic() + 10
        while not (rows := app.store.history("sleeps-on")):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.02)
        app.store.update_run(rows[0]["id"], {"status": RunStatus.abandoned})
        runner.join(10)
        assert not runner.is_alive(), "the run went on after its row was taken for abandoned"
        assert outcomes[0].status is RunStatus.cancelled
        [row] = app.store.history("sleeps-on")
        assert row["status"] is RunStatus.abandoned, "the other serve's verdict stands"


def test_a_run_whose_end_is_written_is_not_taken_for_abandoned_by_its_heartbeat(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The end is committed before the end's other receivers run: a heartbeat meanwhile finds
    the row no longer ``running``, and that is the run's own doing."""

    def slow(sender: Any, event: Any) -> None:
        time.sleep(1.0)

    with temporary_quest(tmp_path, scripts=[brief], database_url=database_url) as app:
        job_complete.connect(slow)
        try:
            with caplog.at_level(logging.WARNING, logger="quest.runner"):
                outcome = app.run("brief")
        finally:
            job_complete.disconnect(slow)
    assert outcome.status is RunStatus.succeeded
    assert "abandoned" not in caplog.text, caplog.text
