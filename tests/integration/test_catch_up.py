"""Slots missed while no serve ran: skipped and visible, or run once when the script asks.

The last claimed slot of each script lives in the database, so a fresh serve (a new ``Quest`` on
the same database, as after a restart) knows what it missed. Every test runs on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quest import Quest, RunStatus, SkipReason, Trigger, script
from quest.scheduler import MAX_MISSED_ROWS, Serve
from quest.testing import FrozenClock, captured_signals, temporary_quest

MONDAY = datetime(2026, 3, 2, 2, 59, 30, tzinfo=UTC)
DAILY = "0 3 * * *"

calls: list[tuple[str, Trigger, datetime | None]] = []


def note(ctx: Any) -> None:
    calls.append((ctx.name, ctx.trigger, ctx.scheduled_for))


@script(quest={"cron": DAILY, "catch_up": "once"})
def daily_once(inputs: Any, ctx: Any) -> None:
    note(ctx)


@script(quest={"cron": DAILY})
def daily_skip(inputs: Any, ctx: Any) -> None:
    note(ctx)


@script(quest={"cron": DAILY, "catch_up": {"policy": "once", "window": "2 hours"}})
def daily_window(inputs: Any, ctx: Any) -> None:
    note(ctx)


@script(quest={"interval": "1 minute"})
def every_minute(inputs: Any, ctx: Any) -> None:
    note(ctx)


@script(quest={"interval": "1 minute", "catch_up": "once"})
def every_minute_once(inputs: Any, ctx: Any) -> None:
    note(ctx)


SCRIPTS = [daily_once, daily_skip, daily_window, every_minute, every_minute_once]


@pytest.fixture(autouse=True)
def clean() -> None:
    calls.clear()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(MONDAY)


@contextmanager
def serving(
    folder: Path, database_url: str, clock: FrozenClock, now: datetime, *scripts: Any
) -> Iterator[tuple[Quest, Serve, list[Any]]]:
    """A fresh process, as after a restart: a new Quest on the same database, started at *now*."""
    folder.mkdir(parents=True, exist_ok=True)
    clock.set(now)
    with temporary_quest(
        folder, scripts=list(scripts or SCRIPTS), database_url=database_url, clock=clock
    ) as app:
        serve = Serve(app, inline=True)
        fires = serve.start(now)
        yield app, serve, fires


def day(n: int, hour: int = 3, minute: int = 0) -> datetime:
    """March *n*, 2026 at hour:minute UTC."""
    return datetime(2026, 3, n, hour, minute, tzinfo=UTC)


def rows_of(app: Quest, name: str) -> list[dict[str, Any]]:
    rows = app.store.history(name, limit=None)
    return sorted(rows, key=lambda r: (r["scheduled_for"], r["created_at"]))


def summary(rows: list[dict[str, Any]]) -> list[tuple[datetime, RunStatus, Trigger]]:
    return [(r["scheduled_for"], r["status"], r["trigger"]) for r in rows]


def run_monday(tmp_path: Path, database_url: str, clock: FrozenClock, *scripts: Any) -> None:
    """A serve that ran Monday's 03:00 slot, then stopped."""
    with serving(tmp_path / "monday", database_url, clock, MONDAY, *scripts) as (_, serve, _):
        clock.set(day(2))
        serve.tick(day(2))


def test_a_daily_run_missed_while_down_runs_once_on_restart(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    run_monday(tmp_path, database_url, clock, daily_once)
    thursday = serving(tmp_path / "thursday", database_url, clock, day(5, 10), daily_once)
    with captured_signals() as events, thursday as (app, _, fires):
        rows = rows_of(app, "daily-once")

    assert summary(rows) == [
        (day(2), RunStatus.succeeded, Trigger.scheduled),
        (day(3), RunStatus.skipped, Trigger.scheduled),
        (day(4), RunStatus.skipped, Trigger.scheduled),
        (day(5), RunStatus.succeeded, Trigger.catch_up),
    ]
    assert calls == [
        ("daily-once", Trigger.scheduled, day(2)),
        ("daily-once", Trigger.catch_up, day(5)),
    ], "one catch-up run, never one per missed day"
    assert [(f.scheduled_for, f.trigger, f.skipped) for f in fires] == [
        (day(3), Trigger.scheduled, SkipReason.missed),
        (day(4), Trigger.scheduled, SkipReason.missed),
        (day(5), Trigger.catch_up, None),
    ]
    skips = events.events("job:skip")
    assert [e.scheduled_for for e in skips] == [day(3), day(4)]
    assert all(e.reason is not None and e.reason.startswith("missed") for e in skips)
    assert rows[1]["reason"] == "missed: no serve was running"
    assert [e.trigger for e in events.events("job:start")] == [Trigger.catch_up]


def test_a_second_restart_catches_up_nothing_more(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    run_monday(tmp_path, database_url, clock, daily_once)
    with serving(tmp_path / "first", database_url, clock, day(5, 10), daily_once):
        pass
    with serving(tmp_path / "second", database_url, clock, day(5, 11), daily_once) as (
        app,
        serve,
        fires,
    ):
        assert fires == []
        clock.set(day(6))
        serve.tick(day(6))
        rows = rows_of(app, "daily-once")
    assert len(rows) == 5
    assert summary(rows)[-1] == (day(6), RunStatus.succeeded, Trigger.scheduled)
    assert [c[1] for c in calls] == [Trigger.scheduled, Trigger.catch_up, Trigger.scheduled]


def test_by_default_missed_slots_are_skipped_and_visible(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    run_monday(tmp_path, database_url, clock, daily_skip)
    later = serving(tmp_path / "later", database_url, clock, day(5, 10), daily_skip)
    with captured_signals() as events, later as (app, _, _):
        rows = rows_of(app, "daily-skip")
    assert summary(rows) == [
        (day(2), RunStatus.succeeded, Trigger.scheduled),
        (day(3), RunStatus.skipped, Trigger.scheduled),
        (day(4), RunStatus.skipped, Trigger.scheduled),
        (day(5), RunStatus.skipped, Trigger.scheduled),
    ]
    assert len(calls) == 1
    assert events.names() == ["job:skip"] * 3


@pytest.mark.parametrize(
    ("restart", "caught_up"),
    [(day(5, 4, 30), True), (day(5, 10), False)],
    ids=["inside-the-window", "outside-the-window"],
)
def test_catch_up_once_only_inside_its_window(
    tmp_path: Path, database_url: str, clock: FrozenClock, restart: datetime, caught_up: bool
) -> None:
    run_monday(tmp_path, database_url, clock, daily_window)
    with serving(tmp_path / "later", database_url, clock, restart, daily_window) as (app, _, _):
        rows = rows_of(app, "daily-window")
    last = (
        (day(5), RunStatus.succeeded, Trigger.catch_up)
        if caught_up
        else (
            day(5),
            RunStatus.skipped,
            Trigger.scheduled,
        )
    )
    assert summary(rows)[1:] == [
        (day(3), RunStatus.skipped, Trigger.scheduled),
        (day(4), RunStatus.skipped, Trigger.scheduled),
        last,
    ]


def test_a_first_start_has_nothing_to_catch_up(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with serving(tmp_path, database_url, clock, day(5, 10)) as (app, _, fires):
        assert fires == []
        assert app.store.count_runs() == 0


def test_a_long_outage_is_summed_up_not_one_row_per_slot(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    run_monday(tmp_path, database_url, clock, every_minute, every_minute_once)
    restart = day(4, 3, 0) + timedelta(seconds=30)
    with (
        captured_signals() as events,
        serving(
            tmp_path / "later", database_url, clock, restart, every_minute, every_minute_once
        ) as (app, _, _),
    ):
        plain = rows_of(app, "every-minute")
        once = rows_of(app, "every-minute-once")

    missed = 2 * 24 * 60  # every minute after Monday 03:00 up to Wednesday 03:00 included
    for rows in (plain, once):
        assert rows[0]["status"] is RunStatus.succeeded
        skipped = [r for r in rows if r["status"] is RunStatus.skipped]
        assert len(skipped) == MAX_MISSED_ROWS + 1
        oldest = skipped[0]
        assert oldest["scheduled_for"] == day(2, 3, 1)
        hidden = missed - MAX_MISSED_ROWS - (1 if rows is once else 0)
        assert f"{hidden} slots from {day(2, 3, 1).isoformat()}" in oldest["reason"]
    assert plain[-1]["scheduled_for"] == day(4, 3, 0)
    assert plain[-1]["status"] is RunStatus.skipped
    assert summary(once)[-1] == (day(4, 3, 0), RunStatus.succeeded, Trigger.catch_up)
    assert len(events.events("job:skip")) == 2 * (MAX_MISSED_ROWS + 1)
    assert [c[1] for c in calls].count(Trigger.catch_up) == 1


def test_two_serves_restarting_together_catch_up_once(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    run_monday(tmp_path, database_url, clock, daily_once)
    with (
        serving(tmp_path / "a", database_url, clock, day(5, 10), daily_once) as (app, _, first),
        serving(tmp_path / "b", database_url, clock, day(5, 10), daily_once) as (_, _, second),
    ):
        rows = rows_of(app, "daily-once")
    assert len(first) == 3
    assert second == []
    assert len(rows) == 4
    assert [c[1] for c in calls].count(Trigger.catch_up) == 1


def test_slots_that_came_due_together_run_once_and_the_rest_are_skipped(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    start = day(2, 9)
    with serving(tmp_path, database_url, clock, start, every_minute) as (app, serve, _):
        serve.tick(start)
        clock.set(start + timedelta(minutes=5))
        fires = serve.tick(start + timedelta(minutes=5))
        rows = rows_of(app, "every-minute")
    assert [(f.scheduled_for, f.skipped) for f in fires] == [
        *[(start + timedelta(minutes=m), SkipReason.missed) for m in range(1, 5)],
        (start + timedelta(minutes=5), None),
    ]
    assert [r["status"] for r in rows] == [
        RunStatus.succeeded,
        *[RunStatus.skipped] * 4,
        RunStatus.succeeded,
    ]
    assert rows[1]["reason"] == "missed: serve was busy or suspended"
    assert len(calls) == 2
