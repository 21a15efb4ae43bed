"""``Serve`` driven by a frozen clock: what it schedules, how each slot runs once, leases, timeouts.

Every test runs on SQLite and PostgreSQL. ``Serve(quest, inline=True)`` runs each fire in the
calling thread, so ``tick(now)`` returns once everything due at *now* has been carried out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quest import Input, Quest, RunStatus, Trigger, script
from quest.config import load_settings
from quest.plan import plan
from quest.scheduler import Serve
from quest.testing import FrozenClock, captured_signals, temporary_quest
from tests.conftest import HEADER, place_file_at

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday, 09:00 UTC: 10:00 in Paris, 04:00 in New York."""

calls: list[dict[str, Any]] = []
current: dict[str, Quest] = {}
release = threading.Event()
entered = threading.Event()


def note(inputs: Any, ctx: Any, **extra: Any) -> None:
    calls.append(
        {
            "name": ctx.name,
            "run_id": ctx.run_id,
            "trigger": ctx.trigger,
            "scheduled_for": ctx.scheduled_for,
            "now": ctx.now,
            "inputs": inputs.model_dump(),
            **extra,
        }
    )


@script(quest={"interval": "1 minute"})
def every_minute(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"cron": "30 8 * * *", "timezone": "Europe/Paris"})
def paris_morning(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"cron": "0 9 * * MON-FRI", "timezone": "America/New_York"})
def new_york_opening(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"at": "2026-03-02T09:05:00+00:00"})
def one_off(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(
    quest={"interval": "1 hour", "inputs": {"recipient": "ops@example.com", "batch": 25}},
    inputs={
        "recipient": Input(str, default="nobody@example.com"),
        "batch": Input(int, default=10, min=1),
        "dry_run": Input(bool, default=False),
    },
)
def with_inputs(inputs: Any, ctx: Any) -> dict[str, Any]:
    note(inputs, ctx)
    return {"batch": inputs.batch}


@script(quest={"interval": "1 day", "run_on_start": True})
def on_start(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"interval": "1 minute", "enabled": False})
def dormant(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"interval": "1 minute", "environments": ["staging"]})
def staging_only(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script
def on_demand(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)


@script(quest={"interval": "1 minute", "without_overlapping": False})
def explode(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)
    raise RuntimeError("the mail server is down")


@script(quest={"interval": "1 minute", "lease_ttl": "2 minutes"})
def leased(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx, lease=current["app"].store.lease(ctx.name))


@script(quest={"interval": "1 minute"})
def global_lease(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx, lease=current["app"].store.lease(ctx.name))


@script(quest={"interval": "1 minute", "timeout": "1 second"})
async def slow_async(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)
    await asyncio.sleep(30)


@script(quest={"interval": "1 minute", "jitter": "0.3 seconds"})
def jittery(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx, at=time.monotonic())


@script(quest={"interval": "1 hour"})
async def long_async(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)
    entered.set()
    await asyncio.sleep(60)


@script(quest={"interval": "1 hour"})
def finishes_in_grace(inputs: Any, ctx: Any) -> str:
    note(inputs, ctx)
    entered.set()
    if not release.wait(10):
        raise RuntimeError("never released")
    return "finished"


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    calls.clear()
    release.clear()
    entered.clear()
    yield
    current.clear()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@contextmanager
def quest_of(
    folder: Path, database_url: str, clock: FrozenClock, *scripts: Any, **overrides: Any
) -> Iterator[Quest]:
    folder.mkdir(parents=True, exist_ok=True)
    with temporary_quest(
        folder, scripts=list(scripts), database_url=database_url, clock=clock, **overrides
    ) as app:
        current["app"] = app
        yield app


def tick(serve: Serve, clock: FrozenClock, when: datetime) -> list[Any]:
    """Move the clock to *when* and process what is due there."""
    clock.set(when)
    return serve.tick(when)


def rows_of(app: Quest, name: str) -> list[dict[str, Any]]:
    """The JobLog rows of *name*, oldest slot first."""
    rows = app.store.history(name, limit=None)
    return sorted(rows, key=lambda r: (r["scheduled_for"] or r["created_at"], r["created_at"]))


def calls_of(name: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["name"] == name]


# -- what serve schedules ------------------------------------------------------------------------


def test_only_enabled_scripts_with_a_schedule_for_this_environment_are_planned(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    scripts = (every_minute, paris_morning, one_off, dormant, staging_only, on_demand)
    with quest_of(tmp_path, database_url, clock, *scripts) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        assert set(serve.entries) == {"every-minute", "paris-morning", "one-off"}
        tick(serve, clock, START + timedelta(minutes=6))
        assert {c["name"] for c in calls} == {"every-minute", "one-off"}
        assert app.store.count_runs("on-demand") == 0
        for name, why in (
            ("dormant", "disabled: enabled is false"),
            ("staging-only", "disabled: runs only in staging; QUEST_ENV is production"),
        ):
            [row] = rows_of(app, name)
            assert (row["status"], row["reason"]) == (RunStatus.skipped, why)

    with quest_of(tmp_path / "staging", database_url, clock, staging_only, env="staging") as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        assert set(serve.entries) == {"staging-only"}
        tick(serve, clock, START)
        ran = [r for r in rows_of(app, "staging-only") if r["status"] is not RunStatus.skipped]
        assert [r["status"] for r in ran] == [RunStatus.succeeded]


def test_quest_env_selects_the_environment(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"QUEST_ENV": "staging", "QUEST_LEASE_TTL": "7"})
    assert settings.env == "staging"
    assert settings.lease_ttl == 7.0
    with temporary_quest(tmp_path, scripts=[staging_only]) as app:
        assert plan(app.registry.get("staging-only"), settings) is not None
        assert plan(app.registry.get("staging-only"), app.settings) is None


def test_an_interval_fires_at_each_slot_through_the_runner(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, every_minute) as app:
        serve = Serve(app, inline=True)
        assert serve.start(START) == []
        with captured_signals() as events:
            for minute in range(3):
                clock.set(START + timedelta(minutes=minute, seconds=0.5))
                fires = serve.tick(clock.now())
                assert [(f.name, f.scheduled_for, f.trigger) for f in fires] == [
                    ("every-minute", START + timedelta(minutes=minute), Trigger.scheduled)
                ]
            assert serve.tick(clock.now()) == [], "a slot fires once"

        slots = [START + timedelta(minutes=m) for m in range(3)]
        assert [c["scheduled_for"] for c in calls] == slots
        assert {c["trigger"] for c in calls} == {Trigger.scheduled}
        assert events.names() == ["job:start", "job:complete"] * 3
        assert [e.scheduled_for for e in events.events("job:start")] == slots
        rows = rows_of(app, "every-minute")
        assert [r["scheduled_for"] for r in rows] == slots
        assert {r["trigger"] for r in rows} == {Trigger.scheduled}
        assert {r["status"] for r in rows} == {RunStatus.succeeded}


def test_cron_wall_times_are_read_in_the_scripts_timezone(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, paris_morning, new_york_opening) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        assert serve.entries["new-york-opening"].next_slot == datetime(2026, 3, 2, 14, tzinfo=UTC)
        assert serve.entries["paris-morning"].next_slot == datetime(2026, 3, 3, 7, 30, tzinfo=UTC)

        tick(serve, clock, datetime(2026, 3, 2, 13, 59, 59, tzinfo=UTC))
        assert calls == []
        tick(serve, clock, datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
        tick(serve, clock, datetime(2026, 3, 3, 7, 30, tzinfo=UTC))
        assert [(c["name"], c["scheduled_for"]) for c in calls] == [
            ("new-york-opening", datetime(2026, 3, 2, 14, tzinfo=UTC)),
            ("paris-morning", datetime(2026, 3, 3, 7, 30, tzinfo=UTC)),
        ]


def test_a_one_off_at_fires_once(tmp_path: Path, database_url: str, clock: FrozenClock) -> None:
    with quest_of(tmp_path, database_url, clock, one_off) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        tick(serve, clock, START + timedelta(minutes=4))
        assert calls == []
        tick(serve, clock, START + timedelta(minutes=5))
        tick(serve, clock, START + timedelta(days=3))
        assert [c["scheduled_for"] for c in calls] == [START + timedelta(minutes=5)]
        assert serve.entries["one-off"].next_slot is None

    with quest_of(tmp_path / "later", database_url, clock, one_off) as app:
        serve = Serve(app, inline=True)
        serve.start(START + timedelta(days=4))
        tick(serve, clock, START + timedelta(days=5))
        assert len(calls) == 1, "a later serve does not run the past instant again"


def test_scheduled_inputs_override_the_defaults(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, with_inputs) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        tick(serve, clock, START)
        expected = {"recipient": "ops@example.com", "batch": 25, "dry_run": False}
        assert calls[0]["inputs"] == expected
        [row] = rows_of(app, "with-inputs")
        assert row["inputs"] == expected
        assert row["result"] == {"batch": 25}


def test_run_on_start_fires_at_start(tmp_path: Path, database_url: str, clock: FrozenClock) -> None:
    start = START + timedelta(minutes=7, seconds=3)
    with quest_of(tmp_path, database_url, clock, on_start, every_minute) as app:
        serve = Serve(app, inline=True)
        fires = serve.start(start)
        assert [(f.name, f.scheduled_for, f.trigger) for f in fires] == [
            ("on-start", start, Trigger.scheduled)
        ]
        assert [c["name"] for c in calls] == ["on-start"]
        [row] = rows_of(app, "on-start")
        assert row["status"] is RunStatus.succeeded
        assert row["scheduled_for"] == start


def test_jitter_delays_the_start_but_not_the_slot(
    tmp_path: Path, database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quest.scheduler

    spread: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        spread.append((low, high))
        return high

    monkeypatch.setattr(quest.scheduler.random, "uniform", uniform)
    with quest_of(tmp_path, database_url, clock, jittery) as app:
        serve = Serve(app)
        serve.start(START)
        before = time.monotonic()
        tick(serve, clock, START)
        serve.join(10)
        assert spread == [(0, 0.3)]
        [call] = calls
        assert call["at"] - before >= 0.3
        assert call["scheduled_for"] == START
        assert [r["status"] for r in rows_of(app, "jittery")] == [RunStatus.succeeded]


# -- one run per slot ----------------------------------------------------------------------------


def test_two_serves_on_one_database_run_each_slot_once(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with (
        quest_of(tmp_path / "a", database_url, clock, every_minute, with_inputs) as first,
        quest_of(tmp_path / "b", database_url, clock, every_minute, with_inputs) as second,
    ):
        assert first.runner.owner != second.runner.owner
        serves = [Serve(first, inline=True), Serve(second, inline=True)]
        for serve in serves:
            serve.start(START)
        for minute in range(5):
            now = START + timedelta(minutes=minute)
            clock.set(now)
            order = serves if minute % 2 else serves[::-1]
            for serve in order:
                serve.tick(now)

        runs = rows_of(first, "every-minute")
        assert [r["scheduled_for"] for r in runs] == [
            START + timedelta(minutes=m) for m in range(5)
        ]
        assert {r["status"] for r in runs} == {RunStatus.succeeded}
        assert len(calls_of("every-minute")) == 5
        assert len(calls_of("with-inputs")) == 1
        owners = {r["owner_pid"] for r in runs}
        assert len(owners) == 1, "both serves live in this process"
        assert first.store.count_runs(status=RunStatus.skipped) == 0


# -- without_overlapping -------------------------------------------------------------------------


def test_a_fire_during_another_run_is_skipped_with_the_reason(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, every_minute) as app:
        assert app.store.acquire_lease(
            "every-minute",
            run_id="f" * 32,
            owner="web-2:4242",
            now=START,
            ttl=timedelta(seconds=90),
        )
        serve = Serve(app, inline=True)
        serve.start(START)
        with captured_signals() as events:
            tick(serve, clock, START)
        assert calls == []
        assert events.names() == ["job:skip"]
        [event] = events.events()
        assert event.status is RunStatus.skipped
        assert event.reason is not None and event.reason.startswith("overlap")
        assert "web-2:4242" in event.reason
        [row] = rows_of(app, "every-minute")
        assert row["status"] is RunStatus.skipped
        assert row["scheduled_for"] == START
        assert row["reason"] == event.reason

        tick(serve, clock, START + timedelta(minutes=1))
        assert calls == [], "the lease still holds"
        tick(serve, clock, START + timedelta(minutes=2))
        assert [c["scheduled_for"] for c in calls] == [START + timedelta(minutes=2)], (
            "a dead holder's lease expires"
        )
        assert app.store.lease("every-minute") is None


def test_the_lease_ttl_is_per_script_or_global(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, leased, global_lease, lease_ttl=45.0) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        tick(serve, clock, START)
        leases = {c["name"]: c["lease"] for c in calls}
        assert leases["leased"]["expires_at"] == START + timedelta(minutes=2)
        assert leases["global-lease"]["expires_at"] == START + timedelta(seconds=45)
        assert leases["leased"]["run_id"] == calls_of("leased")[0]["run_id"]
        assert app.store.lease("leased") is None


def test_a_held_lease_expires_after_its_ttl(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, leased) as app:
        app.store.acquire_lease(
            "leased", run_id="d" * 32, owner="dead-host:1", now=START, ttl=timedelta(minutes=2)
        )
        serve = Serve(app, inline=True)
        serve.start(START)
        for minute in range(3):
            tick(serve, clock, START + timedelta(minutes=minute))
        statuses = [r["status"] for r in rows_of(app, "leased")]
        assert statuses == [RunStatus.skipped, RunStatus.skipped, RunStatus.succeeded]


# -- failures and timeouts never stop serve ------------------------------------------------------


def test_a_script_that_raises_never_stops_serve(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, explode, every_minute) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        with captured_signals() as events:
            for minute in range(3):
                tick(serve, clock, START + timedelta(minutes=minute))
        assert [r["status"] for r in rows_of(app, "explode")] == [RunStatus.failed] * 3
        assert [r["status"] for r in rows_of(app, "every-minute")] == [RunStatus.succeeded] * 3
        errors = events.events("job:error")
        assert len(errors) == 3
        assert errors[0].error == "RuntimeError: the mail server is down"
        assert not errors[0].will_retry


def test_an_async_run_over_its_timeout_is_cancelled(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, slow_async, every_minute) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        began = time.monotonic()
        with captured_signals() as events:
            tick(serve, clock, START)
        assert time.monotonic() - began < 10
        [row] = rows_of(app, "slow-async")
        assert row["status"] is RunStatus.timed_out
        assert row["error"] == "RunTimeout: exceeded its timeout of 1 s"
        assert [e.status for e in events.events("job:error")] == [RunStatus.timed_out]
        assert app.store.lease("slow-async") is None
        assert [r["status"] for r in rows_of(app, "every-minute")] == [RunStatus.succeeded]


SLOW_SYNC = """\
    import time

    from quest import script

    @script(quest={"interval": "1 minute", "timeout": "1 second"})
    def slow_sync(inputs, ctx):
        time.sleep(30)
    """

QUICK = """\
    from quest import script

    @script(quest={"interval": "1 minute"})
    def quick(inputs, ctx):
        return "ok"
    """


def test_a_sync_run_over_its_timeout_is_stopped_in_its_child_process(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "slow_sync.py").write_text(textwrap.dedent(SLOW_SYNC), encoding="utf-8")
    (folder / "quick.py").write_text(textwrap.dedent(QUICK), encoding="utf-8")
    with temporary_quest(
        tmp_path, scripts_dir=folder, database_url=database_url, clock=clock
    ) as app:
        serve = Serve(app, inline=True)
        serve.start(START)
        began = time.monotonic()
        tick(serve, clock, START)
        assert time.monotonic() - began < 15
        [row] = app.store.history("slow-sync")
        assert row["status"] is RunStatus.timed_out
        assert row["error"] == "RunTimeout: exceeded its timeout of 1 s"
        assert app.store.lease("slow-sync") is None
        [quick] = app.store.history("quick")
        assert quick["status"] is RunStatus.succeeded


# -- shutdown ------------------------------------------------------------------------------------


def test_shutdown_waits_for_a_run_that_ends_within_the_grace_period(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, finishes_in_grace) as app:
        serve = Serve(app, grace=10)
        serve.start(START)
        tick(serve, clock, START)
        assert entered.wait(10)
        release.set()
        assert serve.shutdown() == []
        [row] = rows_of(app, "finishes-in-grace")
        assert row["status"] is RunStatus.succeeded
        assert row["result"] == "finished"


def test_shutdown_interrupts_runs_still_going_after_the_grace_period(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with quest_of(tmp_path, database_url, clock, long_async) as app:
        serve = Serve(app, grace=0.2)
        serve.start(START)
        tick(serve, clock, START)
        assert entered.wait(10)
        assert app.store.count_runs(status=RunStatus.running) == 1
        with captured_signals() as events:
            interrupted = serve.shutdown()
        [row] = rows_of(app, "long-async")
        assert interrupted == [row["id"]]
        assert row["status"] is RunStatus.interrupted
        assert "RunInterrupted" in (row["error"] or "")
        assert row["finished_at"] is not None
        assert [e.status for e in events.events("job:error")] == [RunStatus.interrupted]
        assert app.store.count_runs(status=RunStatus.running) == 0
        assert app.store.lease("long-async") is None


def test_a_run_ending_after_the_loop_stopped_writes_into_no_file_that_took_the_waiter_s_place(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """The loop closes its waiter when it stops; a queued run still ending in the grace period
    then wakes the loop. The waiter's descriptor numbers may by then belong to the database file
    a pooled connection opened: the wake-up must not write into it."""
    target = tmp_path / "reopened.sqlite3"
    target.write_bytes(HEADER)
    with quest_of(tmp_path / "app", database_url, clock, finishes_in_grace) as app:
        run_id = app.enqueue("finishes-in-grace")
        serve = Serve(app, grace=10)
        loop = threading.Thread(target=serve.serve_forever, name="serve", daemon=True)
        loop.start()
        placed: list[int] = []
        try:
            assert entered.wait(10), "serve picked up the queued run"
            deadline = time.monotonic() + 10
            while serve._waiter is None:
                assert time.monotonic() < deadline, "the loop never went to sleep on its waiter"
                time.sleep(0.01)
            bell = serve._waiter._bell  # type: ignore[attr-defined]
            numbers = (bell.read, bell.write)
            serve.stop()
            loop.join(10)
            assert not loop.is_alive()
            placed = place_file_at(target, numbers)
            assert placed, "the waiter's descriptor numbers were taken by something else"
            release.set()
            assert serve.shutdown() == []
            assert target.read_bytes() == HEADER
        finally:
            release.set()
            for number in placed:
                with contextlib.suppress(OSError):
                    os.close(number)
        row = app.store.get_run(run_id)
        assert row is not None and row["status"] is RunStatus.succeeded, row


# -- when the loop looks at the queue ------------------------------------------------------------

started = threading.Event()


@script(quest={"without_overlapping": False})
def queued_ping(inputs: Any, ctx: Any) -> None:
    note(inputs, ctx)
    started.set()


@contextmanager
def looping(serve: Serve) -> Iterator[None]:
    loop = threading.Thread(target=serve.serve_forever, name="serve", daemon=True)
    loop.start()
    try:
        yield
    finally:
        serve.stop()
        loop.join(10)
        serve.shutdown(0)


def test_on_sqlite_the_loop_claims_a_delayed_run_when_it_comes_due_without_polling(
    tmp_path: Path,
) -> None:
    """With wake-ups from the database, the queue is not polled every second once the loop
    listens: it sleeps until its next row comes due (no safety check comes within the test)."""
    started.clear()
    url = f"sqlite:///{tmp_path / 'quest.sqlite3'}"
    with temporary_quest(tmp_path, scripts=[queued_ping], database_url=url) as app:
        run_id = app.enqueue("queued-ping", delay=2.5)
        serve = Serve(app, queue_check_every=3600)
        with looping(serve):
            assert started.wait(10), "the delayed run was not claimed when it came due"
            serve.join(10)
        row = app.store.get_run(run_id)
        assert row is not None and row["status"] is RunStatus.succeeded


def test_on_sqlite_an_enqueue_wakes_the_loop_that_waits_on_an_empty_queue(
    tmp_path: Path,
) -> None:
    started.clear()
    url = f"sqlite:///{tmp_path / 'quest.sqlite3'}"
    with temporary_quest(tmp_path, scripts=[queued_ping], database_url=url) as app:
        serve = Serve(app, poll_every=3600, queue_check_every=3600)
        with looping(serve):
            deadline = time.monotonic() + 10
            while serve._queue_next is None:
                assert time.monotonic() < deadline, "the loop never looked at the queue"
                time.sleep(0.01)
            run_id = app.enqueue("queued-ping")
            assert started.wait(10), "the enqueue did not wake the loop"
            serve.join(10)
        row = app.store.get_run(run_id)
        assert row is not None and row["status"] is RunStatus.succeeded


def test_the_next_look_at_the_queue_follows_its_rows(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """Every second while rows may be due; else at the next row's run_after, within the safety
    interval; at once when woken. Without wake-ups from the database (PostgreSQL here), every
    ``poll_every`` seconds as before."""
    with quest_of(tmp_path, database_url, clock, queued_ping) as app:
        serve = Serve(app, queue_check_every=10)
        serve._ensure_waiter()
        try:
            timed = app.store.dialect == "sqlite"
            second = timedelta(seconds=1)
            serve._plan_queue(START, more=False)
            assert serve._queue_next == START + (10 * second if timed else second)
            assert not serve._queue_due(START + 5 * second) or not timed
            assert serve._queue_due(START + 10 * second)
            app.enqueue("queued-ping", run_at=START + 3 * second)
            serve._plan_queue(START, more=False)
            assert serve._queue_next == START + (3 * second if timed else second)
            app.enqueue("queued-ping", run_at=START - second)
            serve._plan_queue(START, more=False)
            assert serve._queue_next == START + second
            serve._plan_queue(START, more=True)
            assert serve._queue_next == START + second
            if timed:
                assert serve.seconds_until_next(START) <= 1.0
                assert not serve._queue_due(START)
                serve._wake()
                serve._sleep(0)
                assert serve._queue_due(START)
        finally:
            if serve._waiter is not None:
                serve._waiter.close()


def test_housekeeping_due_just_before_a_slot_waits_for_the_slot_s_fire(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    """A node beat or a safety poll of the queue due a moment before a slot would hold the fire
    for its transactions: it is done right after the fire instead. Further from a slot, and for
    a queued row that comes due (its time is its own), the loop wakes when they are due."""
    with quest_of(tmp_path, database_url, clock, every_minute, queued_ping) as app:
        serve = Serve(app, poll_every=0.1, queue_check_every=10)
        serve.start(START)
        serve._ensure_waiter()
        try:
            timed = app.store.dialect == "sqlite"
            serve._plan_queue(START, more=False)
            # Housekeeping is due in 0.1 s: the node's beat (SQLite), the queue's poll (PostgreSQL).
            serve._last_node_beat = clock.monotonic() - serve.node_every + 0.1
            (entry,) = serve.entries.values()

            entry.next_slot = START + timedelta(seconds=0.2)
            assert serve.seconds_until_next(START) == pytest.approx(0.2)
            assert serve._housekeeping_waits(START)

            entry.next_slot = START + timedelta(seconds=2)
            assert serve.seconds_until_next(START) == pytest.approx(0.1)
            assert not serve._housekeeping_waits(START)

            if timed:
                app.enqueue("queued-ping", run_at=START + timedelta(seconds=0.1))
                serve._plan_queue(START, more=False)
                serve._last_node_beat = clock.monotonic()
                entry.next_slot = START + timedelta(seconds=0.2)
                assert serve.seconds_until_next(START) == pytest.approx(0.1)
        finally:
            if serve._waiter is not None:
                serve._waiter.close()


def test_the_first_claim_comes_before_the_start_s_housekeeping_and_after_listening(
    tmp_path: Path, database_url: str
) -> None:
    started.clear()
    with temporary_quest(tmp_path, scripts=[queued_ping], database_url=database_url) as app:
        app.enqueue("queued-ping")
        serve = Serve(app)
        order: list[str] = []
        done = threading.Event()
        claim, recover, beat = serve._claim, serve.recover, app.store.beat_node

        def claiming(*args: Any) -> Any:
            order.append("listening" if serve._waiter is not None else "not listening")
            order.append("claim")
            return claim(*args)

        def recovering(*args: Any) -> Any:
            order.append("recover")
            done.set()
            return recover(*args)

        def beating(*args: Any) -> None:
            order.append("beat")
            beat(*args)

        serve._claim = claiming  # type: ignore[method-assign]
        serve.recover = recovering  # type: ignore[method-assign]
        app.store.beat_node = beating  # type: ignore[method-assign]
        with looping(serve):
            assert done.wait(10), "the loop never recovered"
            assert started.wait(10), "the queued run did not start"
            serve.join(10)
        assert order[:3] == ["listening", "claim", "recover"]
        assert serve.node_id is not None
        assert "beat" not in order, "registering stamped the heartbeat; no beat follows at once"


def test_a_scheduled_run_s_end_carries_the_node_s_heartbeat_when_it_is_nearly_due(
    tmp_path: Path, database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat due within ``NODE_BEAT_CARRIED`` seconds when a scheduled run ends is written
    in the transaction that records the end, and the loop's own beat then waits a whole beat;
    further from due, the end carries none. A replayed end gives the beat back to the loop."""
    from quest.scheduler import NODE_BEAT_CARRIED, _Beat

    with quest_of(tmp_path, database_url, clock, every_minute) as app:
        clock.set(START)
        serve = Serve(app, inline=True)
        serve.start(START)
        (entry,) = serve.entries.values()
        beats: list[bool] = []
        beat = app.store.beat_node

        def counted(node_id: str, now: datetime) -> None:
            beats.append(app.store.db.current() is not None)
            beat(node_id, now)

        monkeypatch.setattr(app.store, "beat_node", counted)
        serve._last_node_beat = clock.monotonic() - serve.node_every + NODE_BEAT_CARRIED + 1
        clock.advance(0.5)
        serve._fire(entry, START, Trigger.scheduled)
        assert beats == []

        serve._last_node_beat = clock.monotonic() - serve.node_every + 1
        clock.advance(30)
        ran = serve._fire(entry, START + timedelta(minutes=1), Trigger.scheduled)
        assert [fire.skipped for fire in ran] == [None]
        assert beats == [True]  # inside the end's unit of work
        assert serve._last_node_beat == clock.monotonic()
        (node,) = [n for n in app.store.nodes() if n["id"] == serve.node_id]
        assert node["heartbeat_at"].replace(tzinfo=UTC) == clock.now()
        assert app.store.get_run(ran[0].run_id)["status"] is RunStatus.succeeded

        serve._maintain(clock.now())
        assert beats == [True]
        clock.advance(serve.node_every)
        serve._maintain(clock.now())
        assert beats == [True, False]  # the loop's own beat, in a transaction of its own

        carried = _Beat(serve)
        serve._last_node_beat = before = clock.monotonic() - serve.node_every
        carried.claim()
        assert serve._last_node_beat == clock.monotonic()
        carried.discard()
        assert serve._last_node_beat == before


def test_shutdown_gives_claimed_runs_that_never_began_back_to_the_queue(
    tmp_path: Path, database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows claimed for runs whose threads had not begun them when the grace ended (``--grace
    0``) go back to the queue at once, due when they were, instead of staying ``running`` until
    recovery; a thread that reaches one afterwards leaves it alone, and another serve runs it."""
    started.clear()
    clock.set(START)
    with quest_of(tmp_path, database_url, clock, queued_ping) as app:
        ids = {app.enqueue("queued-ping") for _ in range(3)}
        serve = Serve(app, concurrency=2)
        serve.start(START)
        handed: list[tuple[Any, ...]] = []
        monkeypatch.setattr(serve._workers, "submit", lambda *task: handed.append(task))
        claimed = serve.drain(START)
        assert len(claimed) == 2 and len(handed) == 2
        assert {app.store.get_run(i)["status"] for i in claimed} == {RunStatus.running}
        # As a claim of a scheduled run's retry does: the overlap lease taken for the row.
        ttl = timedelta(seconds=30)
        serve._leases["queued-ping"] = ttl
        owner = app.runner.owner
        assert app.store.acquire_lease(
            "queued-ping", run_id=claimed[0], owner=owner, now=START, ttl=ttl
        )

        assert serve.shutdown(grace=0) == []
        for run_id in claimed:
            row = app.store.get_run(run_id)
            assert row["status"] is RunStatus.queued
            assert row["owner_pid"] is None and row["started_at"] is None
        assert app.store.lease("queued-ping") is None
        for task, *args in handed:
            task(*args)  # the run threads, late
        assert not started.is_set()
        assert {app.store.get_run(i)["status"] for i in ids} == {RunStatus.queued}

        other = Serve(app, concurrency=4, inline=True)
        other.start(START)
        assert set(other.drain(START)) == ids
        assert {app.store.get_run(i)["status"] for i in ids} == {RunStatus.succeeded}


@script(quest={"interval": "1 second"})
def every_second(inputs: Any, ctx: Any) -> None:
    return None


def test_the_loop_plans_its_sleep_before_it_hands_a_fire_to_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fire with nothing else due: the loop plans its sleep, hands the run over and sleeps at
    once, so that the run's thread finds the interpreter free when it wakes (a fire's lateness is
    what a user sees); housekeeping, when it is due, still waits for the fire."""
    url = f"sqlite:///{tmp_path / 'quest.sqlite3'}"
    with temporary_quest(tmp_path, scripts=[every_second], database_url=url) as app:
        serve = Serve(app)
        seen: list[str] = []
        submit, plan_sleep, maintain = (
            serve._workers.submit,
            serve.seconds_until_next,
            serve._maintain,
        )

        def submitted(task: Any, *args: Any) -> None:
            seen.append("hand over" if task == serve._run else "other")
            submit(task, *args)

        def planned(now: datetime) -> float:
            seen.append("plan")
            return plan_sleep(now)

        def maintained(now: datetime) -> None:
            seen.append("keep house")
            maintain(now)

        monkeypatch.setattr(serve._workers, "submit", submitted)
        monkeypatch.setattr(serve, "seconds_until_next", planned)
        monkeypatch.setattr(serve, "_maintain", maintained)
        with looping(serve):
            deadline = time.monotonic() + 20
            while seen.count("hand over") < 3:
                assert time.monotonic() < deadline, f"three fires never came: {seen}"
                time.sleep(0.05)
            serve.join(10)
        fires = [i for i, what in enumerate(seen) if what == "hand over"]
        for i in fires[1:3]:
            assert seen[i - 1] == "plan", seen
            assert seen[i + 1 : i + 2] in (["plan"], []), seen
        succeeded = [
            row for row in app.store.history("every-second") if row["status"] == "succeeded"
        ]
        assert len(succeeded) >= 3
        late = [(row["started_at"] - row["scheduled_for"]).total_seconds() for row in succeeded]
        assert max(late) < 1.0, late


@contextmanager
def planned_with_inputs(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> Iterator[tuple[Quest, Serve, Any, datetime]]:
    """A serve started at ``START`` with ``with_inputs`` planned: its entry and first slot."""
    calls.clear()
    with quest_of(tmp_path, database_url, clock, with_inputs) as app:
        serve = Serve(app)
        serve.start(START)
        entry = serve.entries["with-inputs"]
        assert entry.next_slot is not None
        yield app, serve, entry, entry.next_slot


def test_a_fire_got_ready_ahead_of_its_slot_runs_with_what_was_got_ready(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with planned_with_inputs(tmp_path, database_url, clock) as (app, serve, entry, slot):
        serve._get_ready(slot - timedelta(milliseconds=3), 0.005)
        ready = entry.ready
        assert ready is not None and ready.slot == slot
        assert ready.following == slot + timedelta(hours=1)
        assert ready.inputs is not None and ready.inputs.batch == 25  # type: ignore[attr-defined]
        # Not due yet: kept for its slot.
        assert tick(serve, clock, slot - timedelta(milliseconds=1)) == []
        assert entry.ready is ready
        [fire] = tick(serve, clock, slot)
        serve.join(30)
        assert fire.run_id == ready.request.run_id
        assert entry.next_slot == ready.following and entry.ready is None
        row = app.store.get_run(fire.run_id)
        assert row is not None and row["status"] is RunStatus.succeeded
        assert row["inputs"] == {"recipient": "ops@example.com", "batch": 25, "dry_run": False}


def test_a_fire_whose_inputs_could_not_be_got_ready_validates_them_at_its_slot(
    tmp_path: Path, database_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with planned_with_inputs(tmp_path, database_url, clock) as (app, serve, entry, slot):
        prepare = app.runner.prepare
        failing = [True]

        def flaky(name: str, raw: Any = None) -> Any:
            if failing:
                failing.clear()
                raise RuntimeError("not now")
            return prepare(name, raw)

        monkeypatch.setattr(app.runner, "prepare", flaky)
        serve._get_ready(slot, 0.0)
        assert entry.ready is not None and entry.ready.inputs is None
        [fire] = tick(serve, clock, slot)
        serve.join(30)
        row = app.store.get_run(fire.run_id)
        assert row is not None and row["status"] is RunStatus.succeeded
        assert row["inputs"] == {"recipient": "ops@example.com", "batch": 25, "dry_run": False}
