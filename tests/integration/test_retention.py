"""Retention: finished runs are deleted by age and by count, succeeded and failed apart.

Defaults: succeeded (and skipped) runs 30 days and 1,000 per script; failed, timed out,
interrupted, abandoned and discarded runs 90 days and 5,000 per script. Applied by ``quest serve``
and by ``quest prune``. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from quest import Quest, RunStatus, Trigger, script
from quest.retention import prune
from quest.runner import new_run_id
from quest.scheduler import Serve
from quest.testing import FrozenClock, temporary_quest

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@script
def plain(inputs: Any, ctx: Any) -> None:
    pass


@script
def other(inputs: Any, ctx: Any) -> None:
    pass


@script(
    quest={
        "retention": {
            "succeeded": {"count": 2},
            "failed": {"age": "1 day"},
        }
    }
)
def custom(inputs: Any, ctx: Any) -> None:
    pass


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path, scripts=[plain, other, custom], database_url=database_url, clock=clock
    ) as instance:
        yield instance


def row(name: str, status: RunStatus, age: timedelta) -> dict[str, Any]:
    run_id = new_run_id()
    created = NOW - age
    finished = status.finished
    return {
        "id": run_id,
        "name": name,
        "status": status,
        "trigger": Trigger.scheduled,
        "attempt": 1,
        "max_attempts": 1,
        "root_id": run_id,
        "created_at": created,
        "started_at": created if status is not RunStatus.queued else None,
        "finished_at": created if finished else None,
        "heartbeat_at": created,
    }


def add(app: Quest, rows: list[dict[str, Any]]) -> list[str]:
    with app.store.engine.begin() as connection:
        connection.execute(insert(app.store.runs), rows)
    return [r["id"] for r in rows]


def left(app: Quest, name: str) -> set[str]:
    return {r["id"] for r in app.store.history(name, limit=None)}


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_by_age_succeeded_after_30_days_failed_after_90(app: Quest) -> None:
    kept = add(
        app,
        [
            row("plain", RunStatus.succeeded, days(29)),
            row("plain", RunStatus.skipped, days(29)),
            row("plain", RunStatus.failed, days(89)),
            row("plain", RunStatus.timed_out, days(89)),
            row("plain", RunStatus.abandoned, days(60)),
            row("plain", RunStatus.queued, days(400)),
            row("plain", RunStatus.running, days(400)),
        ],
    )
    gone = add(
        app,
        [
            row("plain", RunStatus.succeeded, days(31)),
            row("plain", RunStatus.skipped, days(31)),
            row("plain", RunStatus.failed, days(91)),
            row("plain", RunStatus.interrupted, days(91)),
            row("plain", RunStatus.discarded, days(120)),
        ],
    )
    assert prune(app, NOW) == {"plain": len(gone)}
    assert left(app, "plain") == set(kept)


def test_by_count_1000_succeeded_and_5000_failed_per_script(app: Quest) -> None:
    succeeded = [row("plain", RunStatus.succeeded, timedelta(minutes=i)) for i in range(1003)]
    failed = [row("plain", RunStatus.failed, timedelta(minutes=i)) for i in range(5002)]
    others = [row("other", RunStatus.succeeded, timedelta(minutes=i)) for i in range(10)]
    add(app, succeeded + failed + others)

    assert prune(app, NOW) == {"plain": 5}
    remaining = left(app, "plain")
    assert {r["id"] for r in succeeded[:1000]} <= remaining
    assert not {r["id"] for r in succeeded[1000:]} & remaining, "the oldest go first"
    assert {r["id"] for r in failed[:5000]} <= remaining
    assert not {r["id"] for r in failed[5000:]} & remaining
    assert len(left(app, "other")) == 10
    assert prune(app, NOW) == {}


def test_a_script_declares_its_own_retention(app: Quest) -> None:
    newest = add(
        app,
        [
            row("custom", RunStatus.succeeded, timedelta(hours=1)),
            row("custom", RunStatus.succeeded, timedelta(hours=2)),
            row("custom", RunStatus.failed, timedelta(hours=23)),
        ],
    )
    add(
        app,
        [
            row("custom", RunStatus.succeeded, timedelta(hours=3)),
            row("custom", RunStatus.failed, timedelta(hours=25)),
        ],
    )
    old_default = add(app, [row("plain", RunStatus.failed, timedelta(hours=25))])
    assert prune(app, NOW) == {"custom": 2}
    assert left(app, "custom") == set(newest)
    assert left(app, "plain") == set(old_default)


def test_serve_applies_retention(app: Quest, clock: FrozenClock) -> None:
    kept = add(app, [row("plain", RunStatus.succeeded, days(1))])
    add(
        app,
        [row("plain", RunStatus.succeeded, days(45)), row("other", RunStatus.failed, days(100))],
    )
    serve = Serve(app, inline=True)
    serve.start(NOW)
    serve.tick(NOW)
    assert left(app, "plain") == set(kept)
    assert left(app, "other") == set()

    add(app, [row("plain", RunStatus.succeeded, days(45))])
    clock.advance(60)
    serve.tick(clock.now())
    assert len(left(app, "plain")) == 2, "then at most once an hour"
    clock.advance(serve.retention_every)
    serve.tick(clock.now())
    assert left(app, "plain") == set(kept)
