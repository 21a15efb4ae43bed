"""Progress through the runner on a real database: the table, ``job:progress`` and throttling.

The runner's heartbeat is kept quiet (a long lease TTL and cancel check), so the only writes of
progress are those a test asks for with ``flush_progress`` and the one at the run's end.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quest import Input, Quest, RunStatus, script
from quest.signals import JobEvent, job_progress
from quest.store import Store
from quest.testing import FrozenClock, temporary_quest

current: dict[str, Quest] = {}
seen: dict[str, Any] = {}


@script(inputs={"steps": Input(int, default=50)})
def counting(inputs: Any, ctx: Any) -> int:
    for step in range(1, inputs.steps + 1):
        ctx.clock.advance(0.25)
        ctx.progress(step, inputs.steps, f"item {step}")
        if step == 25:
            runner = current["app"].runner
            runner.flush_progress()
            seen["during"] = current["app"].store.progress_of([ctx.run_id]).get(ctx.run_id)
            seen["row"] = current["app"].store.get_run(ctx.run_id)
    return inputs.steps


@script
async def counting_async(inputs: Any, ctx: Any) -> int:
    done = 0
    async for _ in ctx.progress.iter(range(7), message="rows"):
        ctx.clock.advance(0.3)
        done += 1
    return done


@script
def reporting_raw(inputs: Any, ctx: Any) -> None:
    """Reports straight to the runner, past the source's throttle, to test the runner's own."""
    runner = current["app"].runner
    seen["written"] = []
    for step in range(1, 21):
        ctx.clock.advance(0.25)
        ctx._report("progress", {"current": step, "total": 20, "message": None})
        seen["written"].append(runner.flush_progress())


@script
def careless(inputs: Any, ctx: Any) -> str:
    ctx.progress(-1, 10)
    ctx.progress("three", 10)
    ctx.progress(float("nan"))
    ctx.progress(2, -10)
    ctx.progress(None)
    return "still fine"


@script(inputs={"token": Input(str, sensitive=True, default="tok-5f1e9c")})
def leaky(inputs: Any, ctx: Any) -> None:
    ctx.progress(1, 2, f"calling the API with {inputs.token}")


@script
def failing_halfway(inputs: Any, ctx: Any) -> None:
    for step in ctx.progress.iter(range(10)):
        if step == 4:
            raise RuntimeError("row 4 is broken")


SCRIPTS = [counting, counting_async, reporting_raw, careless, leaky, failing_halfway]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Quest]:
    seen.clear()
    with temporary_quest(
        tmp_path,
        scripts=SCRIPTS,
        database_url=database_url,
        clock=FrozenClock("2026-03-01T12:00:00+00:00"),
        lease_ttl=3600,
    ) as instance:
        instance.runner.cancel_check_every = 3600
        current["app"] = instance
        yield instance
    current.clear()


@contextmanager
def progress_events(app: Quest) -> Iterator[list[JobEvent]]:
    events: list[JobEvent] = []

    def receive(sender: object, event: JobEvent) -> None:
        events.append(event)

    with job_progress.connected_to(receive, sender=app.runner):
        yield events


@pytest.fixture
def events(app: Quest) -> Iterator[list[JobEvent]]:
    with progress_events(app) as captured:
        yield captured


def test_a_sync_run_stores_its_progress_while_it_runs_and_its_last_value(
    app: Quest, events: list[JobEvent]
) -> None:
    outcome = app.run("counting")

    assert outcome.ok
    assert seen["row"]["status"] is RunStatus.running
    during = seen["during"]
    assert during is not None, "the progress is in the table while the run runs"
    # 25 left the script at once (a second after 21); a value can leave early only through the
    # source's one-second timer, which a slow machine may fire meanwhile.
    assert 21 <= during["current"] <= 25 and during["total"] == 50
    assert during["message"] == f"item {during['current']:.0f}"
    stored = app.store.progress_of([outcome.run_id])[outcome.run_id]
    assert (stored["current"], stored["total"], stored["message"]) == (50, 50, "item 50")
    assert stored["updated_at"].tzinfo is not None

    assert [e.progress_current for e in events] == [during["current"], 50]
    last = events[-1]
    assert last.name == "counting" and last.run_id == outcome.run_id
    assert last.status is RunStatus.running
    assert (last.progress_total, last.progress_message) == (50, "item 50")
    assert last.progress_percent == 100.0
    assert last.to_dict()["progress_percent"] == 100.0


def test_an_async_run_reports_with_async_for_over_progress_iter(
    app: Quest, events: list[JobEvent]
) -> None:
    outcome = app.run("counting-async")

    assert outcome.ok and outcome.result == 7
    stored = app.store.progress_of([outcome.run_id])[outcome.run_id]
    assert (stored["current"], stored["total"], stored["message"]) == (7, 7, "rows")
    assert events[-1].progress_current == 7


def test_the_runner_writes_a_runs_progress_at_most_once_a_second(
    app: Quest, events: list[JobEvent]
) -> None:
    outcome = app.run("reporting-raw")

    assert outcome.ok
    assert sum(seen["written"]) == 5
    assert [e.progress_current for e in events] == [1, 5, 9, 13, 17, 20], (
        "one write a second, and the last value when the script returns"
    )
    assert app.store.progress_of([outcome.run_id])[outcome.run_id]["current"] == 20


def test_invalid_progress_warns_in_the_run_log_and_never_fails_the_run(
    app: Quest, events: list[JobEvent], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "quest.script.careless"):
        outcome = app.run("careless")

    assert outcome.ok and outcome.result == "still fine"
    warnings = [r for r in caplog.records if r.name == "quest.script.careless"]
    assert len(warnings) == 5
    assert {getattr(r, "run_id", None) for r in warnings} == {outcome.run_id}
    messages = [r.getMessage() for r in warnings]
    assert "current is negative (-1)" in messages[0]
    assert "current is not a number (str 'three')" in messages[1]
    assert "current is NaN" in messages[2]
    assert "total is negative (-10)" in messages[3]
    assert app.store.progress_of([outcome.run_id]) == {}
    assert events == []


def test_a_secret_in_a_progress_message_is_scrubbed_from_table_and_signal(
    app: Quest, events: list[JobEvent]
) -> None:
    outcome = app.run("leaky")

    stored = app.store.progress_of([outcome.run_id])[outcome.run_id]
    assert stored["message"] == "calling the API with ***"
    assert events[-1].progress_message == "calling the API with ***"


def test_a_failed_run_keeps_where_it_stopped(app: Quest) -> None:
    outcome = app.run("failing-halfway")

    assert outcome.status is RunStatus.failed
    stored = app.store.progress_of([outcome.run_id])[outcome.run_id]
    assert (stored["current"], stored["total"]) == (4, 10)


TIMED = """\
    from quest import script

    @script(quest={"timeout": "60 seconds"})
    def timed(inputs, ctx):
        for step in range(1, 4):
            ctx.progress(step, 3, f"step {step}")
        return "done"
    """


def test_progress_from_a_timed_child_process_reaches_the_table_and_the_signal(
    tmp_path: Path, database_url: str
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "timed.py").write_text(textwrap.dedent(TIMED), encoding="utf-8")
    with (
        temporary_quest(tmp_path, scripts_dir=folder, database_url=database_url) as app,
        progress_events(app) as events,
    ):
        outcome = app.run("timed")
        assert outcome.ok, outcome.error
        stored = app.store.progress_of([outcome.run_id])[outcome.run_id]
        assert (stored["current"], stored["total"], stored["message"]) == (3, 3, "step 3")
        assert events and events[-1].progress_current == 3
        assert events[-1].run_id == outcome.run_id


def test_progress_of_a_run_no_longer_in_the_joblog_is_pruned(app: Quest) -> None:
    from quest.retention import prune

    kept = app.run("counting", {"steps": 2})
    store: Store = app.store
    store.set_progress("0" * 32, current=1, total=None, message=None, now=datetime.now(UTC))
    old = app.run("counting", {"steps": 3})
    store.update_run(old.run_id, {"created_at": datetime(2000, 1, 1, tzinfo=UTC)})

    prune(app, app.clock.now())

    assert set(store.progress_of([kept.run_id, old.run_id, "0" * 32])) == {kept.run_id}


def test_the_store_upserts_progress_and_lists_running_runs_with_it(app: Quest) -> None:
    store: Store = app.store
    now = app.clock.now()
    run_id = app.enqueue("counting")
    [claimed] = store.claim_queued(now=now, limit=1, owner_host="h", owner_pid=1)
    assert claimed["id"] == run_id
    store.set_progress(run_id, current=1, total=10, message="a", now=now)
    store.set_progress(run_id, current=2, total=None, message=None, now=now + timedelta(seconds=1))

    [running] = store.running_runs()
    assert running["id"] == run_id and running["status"] is RunStatus.running
    assert running["progress"]["current"] == 2
    assert running["progress"]["total"] is None and running["progress"]["message"] is None
    assert store.progress_of([]) == {}
    many = [f"{n:032x}" for n in range(1200)] + [run_id]
    assert list(store.progress_of(many)) == [run_id]
