"""The runner on a real database: runs, failures and the JobLog row of each, on every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from quest import (
    Discard,
    Input,
    InvalidInputs,
    Quest,
    RunStatus,
    ScriptNotFound,
    Trigger,
    script,
)
from quest.results import REPR_MARKER, TRUNCATED_MARKER
from quest.testing import FrozenClock, captured_signals, temporary_quest

START = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
seen: dict[str, Any] = {}
current: dict[str, Quest] = {}


def observe(ctx: Any) -> None:
    """What the JobLog says about this run while it is running, and what the context holds."""
    store = current["app"].store
    seen["row"] = store.get_run(ctx.run_id)
    seen["ctx"] = ctx
    with ctx.db() as session:
        runs = store.runs
        seen["orm_status"] = session.execute(
            select(runs.c.status).where(runs.c.id == ctx.run_id)
        ).scalar_one()


@script(
    friendly_name="Sync job",
    inputs={
        "days_old": Input(int, default=30, min=0),
        "token": Input(str, sensitive=True, required=False),
    },
)
def sync_job(inputs: Any, ctx: Any) -> dict[str, Any]:
    observe(ctx)
    ctx.clock.advance(2.5)
    ctx.log.info("working on %s", inputs.days_old)
    return {"cutoff": (ctx.now - timedelta(days=inputs.days_old)).isoformat()}


@script(friendly_name="Async job", inputs={"n": Input(int, default=2)})
async def async_job(inputs: Any, ctx: Any) -> dict[str, int]:
    import asyncio

    observe(ctx)
    await asyncio.sleep(0)
    ctx.clock.advance(0.25)
    return {"double": inputs.n * 2}


@script(inputs={"token": Input(str, sensitive=True, default="hunter2")})
def failing_job(inputs: Any, ctx: Any) -> None:
    observe(ctx)
    ctx.clock.advance(1)
    raise RuntimeError(f"upstream refused token {inputs.token}")


@script
async def failing_async_job(inputs: Any, ctx: Any) -> None:
    raise KeyError("missing")


@script
def discarding_job(inputs: Any, ctx: Any) -> None:
    raise Discard("the invoice was deleted")


@script(inputs={"kind": Input(["none", "object", "large", "text"], default="none")})
def returning_job(inputs: Any, ctx: Any) -> Any:
    if inputs.kind == "object":
        return object()
    if inputs.kind == "large":
        return {"blob": "x" * 200_000}
    if inputs.kind == "text":
        return "done"
    return None


released = threading.Event()


@script
def held_job(inputs: Any, ctx: Any) -> None:
    assert released.wait(10)


SCRIPTS = [
    sync_job,
    async_job,
    failing_job,
    failing_async_job,
    discarding_job,
    returning_job,
    held_job,
]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-01T12:00:00+01:00")


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    seen.clear()
    with temporary_quest(
        tmp_path, scripts=SCRIPTS, database_url=database_url, clock=clock
    ) as instance:
        current["app"] = instance
        yield instance
    current.clear()


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


def test_a_sync_run_is_recorded_running_then_succeeded(app: Quest) -> None:
    outcome = app.run("sync-job", {"days_old": 7})

    assert outcome.ok
    assert outcome.status is RunStatus.succeeded
    assert outcome.trigger is Trigger.manual
    assert outcome.result == {"cutoff": (START - timedelta(days=7)).isoformat()}
    assert outcome.duration_ms == 2500

    during = seen["row"]
    assert during is not None, "the JobLog row must exist while the script runs"
    assert during["id"] == outcome.run_id
    assert during["status"] is RunStatus.running
    assert during["started_at"] == START
    assert during["finished_at"] is None
    assert during["duration_ms"] is None
    assert seen["orm_status"] is RunStatus.running

    after = app.store.get_run(outcome.run_id)
    assert after is not None
    assert after["name"] == "sync-job"
    assert after["status"] is RunStatus.succeeded
    assert after["trigger"] is Trigger.manual
    assert after["attempt"] == 1
    assert after["inputs"] == {"days_old": 7, "token": None}
    assert after["created_at"] == START
    assert after["started_at"] == START
    assert after["finished_at"] == START + timedelta(seconds=2.5)
    assert after["duration_ms"] == 2500
    assert after["result"] == outcome.result
    assert after["error"] is None
    assert after["traceback"] is None
    for column in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        assert_utc(after[column])
    assert app.store.count_runs("sync-job") == 1


def test_the_context_is_driven_by_the_frozen_clock(app: Quest, clock: FrozenClock) -> None:
    outcome = app.run("sync-job")
    ctx = seen["ctx"]
    assert ctx.now == START
    assert_utc(ctx.now)
    assert ctx.clock is clock
    assert ctx.run_id == outcome.run_id
    assert ctx.name == "sync-job"
    assert ctx.trigger is Trigger.manual
    assert ctx.attempt == 1
    assert not ctx.is_retry
    assert clock.now() == START + timedelta(seconds=2.5)


def test_an_async_run(app: Quest) -> None:
    outcome = app.run("async-job", {"n": 21})

    assert outcome.ok
    assert outcome.result == {"double": 42}
    assert outcome.duration_ms == 250
    assert seen["row"]["status"] is RunStatus.running
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["status"] is RunStatus.succeeded
    assert row["result"] == {"double": 42}
    assert row["finished_at"] == START + timedelta(milliseconds=250)


def test_a_failed_run(app: Quest) -> None:
    with captured_signals() as events:
        outcome = app.run("failing-job", {"token": "s3cr3t"})

    assert outcome.status is RunStatus.failed
    assert not outcome.ok
    assert outcome.error == "RuntimeError: upstream refused token ***"
    assert outcome.traceback is not None
    assert "RuntimeError" in outcome.traceback
    assert "s3cr3t" not in outcome.traceback
    assert outcome.retry_at is None
    assert events.names() == ["job:start", "job:error"]

    assert seen["row"]["status"] is RunStatus.running
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["status"] is RunStatus.failed
    assert row["error"] == outcome.error
    assert row["traceback"] == outcome.traceback
    assert row["inputs"] == {"token": "***"}
    assert row["finished_at"] == START + timedelta(seconds=1)
    assert row["duration_ms"] == 1000
    assert row["result"] is None
    assert app.store.count_runs() == 1, "a manual run is not retried"


def test_a_failed_async_run(app: Quest) -> None:
    outcome = app.run("failing-async-job")
    assert outcome.status is RunStatus.failed
    assert outcome.error == "KeyError: 'missing'"
    row = app.store.get_run(outcome.run_id)
    assert row is not None and row["status"] is RunStatus.failed


def test_a_discarded_run(app: Quest) -> None:
    outcome = app.run("discarding-job")
    assert outcome.status is RunStatus.discarded
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["status"] is RunStatus.discarded
    assert "the invoice was deleted" in (row["error"] or "")


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("none", lambda result: result is None),
        ("text", lambda result: result == "done"),
        ("object", lambda result: result[REPR_MARKER].startswith("<object object")),
        (
            "large",
            lambda result: result[TRUNCATED_MARKER] is True and result["size"] > 200_000,
        ),
    ],
)
def test_result_capture(app: Quest, kind: str, check: Any) -> None:
    outcome = app.run("returning-job", {"kind": kind})
    assert outcome.ok
    assert check(outcome.result)
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["result"] == outcome.result


def test_times_are_stored_in_utc(app: Quest) -> None:
    outcome = app.run("sync-job")
    with app.store.engine.connect() as connection:
        raw = connection.exec_driver_sql(
            f"SELECT started_at FROM {app.store.runs.name} WHERE id = '{outcome.run_id}'"
        ).scalar_one()
    if app.store.dialect == "sqlite":
        assert str(raw).startswith("2026-03-01 11:00:00")
    else:
        assert raw == START


def test_invalid_inputs_raise_and_record_nothing(app: Quest) -> None:
    with captured_signals() as events, pytest.raises(InvalidInputs) as caught:
        app.run("sync-job", {"days_old": -1})
    assert caught.value.errors[0][0] == "days_old"
    with pytest.raises(InvalidInputs):
        app.run("sync-job", {"days": 1})
    assert events == []
    assert app.store.count_runs() == 0


def test_an_unknown_script_raises_and_records_nothing(app: Quest) -> None:
    with pytest.raises(ScriptNotFound):
        app.run("nope")
    assert app.store.count_runs() == 0


def test_each_run_is_one_row_newest_first(app: Quest, clock: FrozenClock) -> None:
    first = app.run("async-job")
    clock.advance(60)
    second = app.run("failing-job")
    rows = app.store.history()
    assert [r["id"] for r in rows] == [second.run_id, first.run_id]
    assert [r["status"] for r in rows] == [RunStatus.failed, RunStatus.succeeded]
    assert app.store.history(statuses=[RunStatus.failed])[0]["id"] == second.run_id
    assert [r["id"] for r in app.store.history("async-job")] == [first.run_id]


def test_the_lease_is_released_after_a_run(app: Quest) -> None:
    app.run("sync-job")
    assert app.store.lease("sync-job") is None
    app.run("failing-job")
    assert app.store.lease("failing-job") is None


def test_closing_the_runner_waits_for_a_heartbeat_read_under_way(
    app: Quest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is closed after the runner: a heartbeat still reading would reopen it."""
    released.clear()
    reading, go_on = threading.Event(), threading.Event()
    cancel_requests = app.store.cancel_requests

    def slow(run_ids: list[str]) -> dict[str, str]:
        reading.set()
        assert go_on.wait(10)
        return cancel_requests(run_ids)

    monkeypatch.setattr(app.store, "cancel_requests", slow)
    app.runner.cancel_check_every = 0.01
    run = threading.Thread(target=app.run, args=("held-job",))
    run.start()
    try:
        assert reading.wait(10), "the heartbeat never looked for cancel requests"
        closing = threading.Thread(target=app.runner.close)
        closing.start()
        closing.join(0.2)
        assert closing.is_alive(), "close returned while the heartbeat was reading"
        go_on.set()
        closing.join(10)
        assert not closing.is_alive()
        heartbeat = app.runner._heartbeat
        assert heartbeat is not None and not heartbeat.is_alive()
    finally:
        go_on.set()
        released.set()
        run.join(10)
    assert app.store.history("held-job")[0]["status"] is RunStatus.succeeded
