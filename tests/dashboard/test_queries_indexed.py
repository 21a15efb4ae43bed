"""The dashboard's lookups over many scripts give what the plain queries give: each script's
latest outcome and latest success (read from the partial index of finished runs), a day's runs
per status and hour (read from index ranges), and the periods of scheduled scripts (kept between
views until each one's next fire)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from quest import Quest, script
from quest.dashboard import queries
from quest.enums import RunStatus, Trigger
from quest.models import FINISHED_WHERE
from quest.testing import FrozenClock, temporary_quest
from tests.dashboard._support import NOW


def add(quest: Quest, name: str, status: RunStatus, at: datetime, **extra: Any) -> str:
    run_id = uuid.uuid4().hex
    row = {
        "id": run_id,
        "name": name,
        "status": status,
        "trigger": Trigger.scheduled,
        "attempt": 1,
        "max_attempts": 1,
        "root_id": run_id,
        "inputs": {},
        "created_at": at,
        "finished_at": at + timedelta(seconds=3) if status.finished else None,
        **extra,
    }
    with quest.store.engine.begin() as connection:
        connection.execute(insert(quest.store.runs), [row])
    return run_id


def test_latest_outcomes_and_last_runs_agree_with_the_store(quest: Quest) -> None:
    hour = timedelta(hours=1)
    # Newer queued and running runs are passed over; so are older finished ones.
    add(quest, "cleanup", RunStatus.succeeded, NOW - 5 * hour)
    add(quest, "cleanup", RunStatus.failed, NOW - 3 * hour)
    add(quest, "cleanup", RunStatus.running, NOW - 1 * hour)
    add(quest, "cleanup", RunStatus.queued, NOW - 0.5 * hour)
    # The latest success is older than the latest outcome.
    add(quest, "report", RunStatus.succeeded, NOW - 9 * hour)
    add(quest, "report", RunStatus.timed_out, NOW - 8 * hour)
    add(quest, "report", RunStatus.skipped, NOW - 7 * hour)
    # Never finished a run; never succeeded.
    add(quest, "ingest", RunStatus.queued, NOW - hour)
    add(quest, "sync-api", RunStatus.cancelled, NOW - 2 * hour)
    names = ["cleanup", "report", "ingest", "sync-api", "needs-count", "no-such-script"]

    expected = quest.store.last_runs(names)
    assert queries.last_runs(quest, names) == expected
    assert set(expected) == {"cleanup", "report", "sync-api"}
    outcomes = queries.latest_outcomes(quest, names)
    assert {name: o.status for name, o in outcomes.items()} == {
        name: row["status"] for name, row in expected.items()
    }
    # (status of the latest finished run, when it was created, when the latest success was)
    assert outcomes["cleanup"][:3] == (RunStatus.failed, NOW - 3 * hour, NOW - 5 * hour)
    assert outcomes["report"][:3] == (RunStatus.skipped, NOW - 7 * hour, NOW - 9 * hour)
    assert outcomes["sync-api"][:3] == (RunStatus.cancelled, NOW - 2 * hour, None)
    assert {name: o.run_id for name, o in outcomes.items()} == {
        name: row["id"] for name, row in expected.items()
    }
    assert queries.latest_outcomes(quest, []) == {} and queries.last_runs(quest, []) == {}
    failing = queries.failing_scripts(quest)
    assert [item["name"] for item in failing] == ["cleanup"]
    add(quest, "report", RunStatus.failed, NOW - 2 * hour)
    # The most recent failure first; a limit reads only the first ones whole.
    assert [item["name"] for item in queries.failing_scripts(quest)] == ["report", "cleanup"]
    assert [item["name"] for item in queries.failing_scripts(quest, limit=1)] == ["report"]


def test_the_day_is_counted_as_a_count_of_its_rows_would(quest: Quest) -> None:
    since = NOW - timedelta(hours=24)
    rows = [
        (RunStatus.succeeded, since - timedelta(microseconds=1), 10),  # a day and a moment ago
        (RunStatus.succeeded, since, 20),  # exactly a day ago: counted
        (RunStatus.failed, since + timedelta(minutes=1), None),
        (RunStatus.timed_out, NOW - timedelta(hours=3), 600_000),
        (RunStatus.succeeded, NOW.replace(minute=0) - timedelta(hours=3), 40),  # on an hour
        (RunStatus.running, NOW - timedelta(minutes=2), None),
        (RunStatus.queued, NOW - timedelta(minutes=1), None),
        (RunStatus.succeeded, NOW + timedelta(hours=2), 5),  # another node's clock is ahead
    ]
    for status, at, duration in rows:
        add(quest, "cleanup", status, at, duration_ms=duration)

    data = queries.overview(quest, NOW)

    counted = [(s, at, d) for s, at, d in rows if at >= since]
    assert data.counts == dict(Counter(s.value for s, _, _ in counted))
    assert data.total == len(counted)
    start = since.replace(minute=0, second=0, microsecond=0)
    for step, hour in enumerate(data.hours):
        assert hour["hour"] == start + timedelta(hours=step)
        inside = [
            (s, d) for s, at, d in counted if hour["hour"] <= at < hour["hour"] + timedelta(hours=1)
        ]
        assert hour["runs"] == len(inside)
        assert hour["failed"] == sum(1 for s, _ in inside if s in queries.FAILED)
        timed = [d for _, d in inside if d is not None]
        assert hour["duration"] == (sum(timed) / len(timed) if timed else None)
    assert sum(hour["runs"] for hour in data.hours) == len(counted) - 1  # not the future one


@script(quest={"cron": "0 9 * * 1-5"})
def weekdays(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"interval": "15 minutes"})
def often(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"cron": "30 6 * * *", "enabled": False})
def switched_off(inputs: Any, ctx: Any) -> None:
    pass


def test_kept_periods_are_the_periods_at_every_instant(tmp_path: Path) -> None:
    friday = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)
    with temporary_quest(
        tmp_path, scripts=[weekdays, often, switched_off], clock=FrozenClock(friday)
    ) as quest:
        scheduled = dict(queries._scheduled(quest))
        assert set(scheduled) == {"weekdays", "often"}
        instants = [friday + timedelta(hours=h) for h in (0, 0.5, 1, 1.01, 30, 49, 73, 74, 100)]
        # and back in time: what was kept is not used for an earlier instant
        instants += [friday - timedelta(days=3), friday + timedelta(hours=1)]
        for now in instants:
            direct = [
                (name, period)
                for name, s in scheduled.items()
                if (period := queries.period_of(quest, s, now)) is not None
            ]
            assert queries._periods_of(quest, now) == direct, now
        # Before Friday's fire: Friday 09:00 to Monday 09:00; after it, Monday to Tuesday.
        assert dict(queries._periods_of(quest, friday))["weekdays"] == timedelta(days=3)
        later = friday + timedelta(hours=2)
        assert dict(queries._periods_of(quest, later))["weekdays"] == timedelta(days=1)


def test_late_scripts_of_the_overview_and_of_the_scripts_filter_agree(
    quest: Quest, clock: FrozenClock
) -> None:
    # cleanup runs hourly: its success 3 hours ago is late; report (daily) is not.
    add(quest, "cleanup", RunStatus.succeeded, NOW - timedelta(hours=3))
    add(quest, "report", RunStatus.succeeded, NOW - timedelta(hours=20))
    data = queries.overview(quest, NOW)
    assert [item["name"] for item in data.late] == ["cleanup"]
    assert data.late[0]["last_success"] == NOW - timedelta(hours=3) + timedelta(seconds=3)
    page = queries.scripts(quest, NOW, state="late")
    assert [row.script.name for row in page.rows] == ["cleanup"]


def hour_of(data: queries.Overview, at: datetime) -> dict[str, Any]:
    return next(h for h in data.hours if h["hour"] <= at < h["hour"] + timedelta(hours=1))


def test_ended_hours_are_kept_and_moving_hours_are_read_again(quest: Quest) -> None:
    hour = timedelta(hours=1)
    settled_at = NOW.replace(minute=0, second=0, microsecond=0) - 5 * hour + timedelta(minutes=10)
    moving_at = settled_at + hour
    add(quest, "cleanup", RunStatus.succeeded, settled_at, duration_ms=100)
    running = add(quest, "cleanup", RunStatus.running, moving_at)
    first = queries.overview(quest, NOW)
    assert hour_of(first, settled_at)["runs"] == 1
    assert hour_of(first, moving_at)["runs"] == 1 and first.counts["running"] == 1

    # The running run ends: its hour held a running run, so it is read again and shows it.
    with quest.store.engine.begin() as connection:
        runs = quest.store.runs
        connection.execute(
            runs.update().where(runs.c.id == running).values(status=RunStatus.failed)
        )
    # A run written late into the settled hour is not read until the hour is read again.
    add(quest, "cleanup", RunStatus.failed, settled_at + timedelta(minutes=1))
    later = queries.overview(quest, NOW + timedelta(minutes=1))
    assert hour_of(later, moving_at)["failed"] == 1 and "running" not in later.counts
    assert hour_of(later, settled_at) == {**hour_of(first, settled_at)}
    assert later.counts == {"succeeded": 1, "failed": 1}

    # Kept for SETTLED_FOR (and a few seconds per hour of the day), then read again.
    again = NOW + queries.SETTLED_FOR + timedelta(minutes=10)
    fresh = queries.overview(quest, again)
    assert hour_of(fresh, settled_at)["runs"] == 2 and hour_of(fresh, settled_at)["failed"] == 1
    assert fresh.counts == {"succeeded": 1, "failed": 2}


def test_an_hour_just_ended_is_read_again(quest: Quest) -> None:
    top = NOW.replace(minute=0, second=0, microsecond=0)
    at = top - timedelta(minutes=30)  # in the hour that ended at *top*
    add(quest, "cleanup", RunStatus.succeeded, at)
    just_after = top + timedelta(minutes=1)  # less than SETTLED_AFTER after the hour's end
    assert hour_of(queries.overview(quest, just_after), at)["runs"] == 1
    add(quest, "cleanup", RunStatus.succeeded, at + timedelta(minutes=1))
    assert hour_of(queries.overview(quest, just_after), at)["runs"] == 2


def test_two_databases_keep_their_own_hours(tmp_path: Path) -> None:
    at = NOW - timedelta(hours=5)
    counted = []
    for count in (1, 3):
        with temporary_quest(tmp_path / str(count), scripts=[often], clock=FrozenClock(NOW)) as app:
            for step in range(count):
                add(app, "often", RunStatus.succeeded, at + timedelta(seconds=step))
            counted.append(hour_of(queries.overview(app, NOW), at)["runs"])
    assert counted == [1, 3]


def test_the_strips_of_many_scripts_are_read_at_once(quest: Quest) -> None:
    made: dict[str, list[str]] = {"cleanup": [], "report": []}
    for step in range(35):
        status = RunStatus.failed if step % 4 == 0 else RunStatus.succeeded
        made["cleanup"].append(add(quest, "cleanup", status, NOW - timedelta(minutes=100 - step)))
    made["report"].append(add(quest, "report", RunStatus.skipped, NOW - timedelta(hours=2)))
    add(quest, "report", RunStatus.running, NOW - timedelta(hours=1))
    add(quest, "ingest", RunStatus.queued, NOW)

    strips = queries.outcome_strips(quest, ["cleanup", "report", "ingest", "cleanup"])
    assert list(strips) == ["cleanup", "report", "ingest"]
    assert [run["id"] for run in strips["cleanup"]] == made["cleanup"][-queries.STRIP :]
    assert [run["id"] for run in strips["report"]] == made["report"]
    assert strips["ingest"] == []
    first = strips["cleanup"][0]
    assert set(first) == {"id", "status", "created_at", "duration_ms"}
    assert first["created_at"] == NOW - timedelta(minutes=100 - 5)
    assert first["status"] == RunStatus.succeeded
    assert queries.outcome_strips(quest, []) == {}


def test_warming_reads_the_ended_hours_before_the_first_view(quest: Quest) -> None:
    from quest.dashboard import warm

    at = NOW - timedelta(hours=5)
    add(quest, "cleanup", RunStatus.succeeded, at)
    assert warm(quest) is True
    # Written after the warm-up into an hour it read: the first view shows the hour as read.
    add(quest, "cleanup", RunStatus.succeeded, at + timedelta(seconds=1))
    assert hour_of(queries.overview(quest, NOW), at)["runs"] == 1


def plan_of(quest: Quest, statement: Any, params: dict[str, Any]) -> str:
    """SQLite's plan for *statement* (compiled as the dashboard runs it) with *params*."""
    compiled = statement.compile(dialect=quest.store.engine.dialect)
    values = compiled.construct_params(params)
    bound = tuple(values[name] for name in compiled.positiontup or ())
    with quest.store.engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, bound)
        return " | ".join(str(row[3]) for row in rows)


def test_the_finished_runs_lookups_walk_the_partial_index(quest: Quest) -> None:
    if quest.store.dialect != "sqlite":
        return
    runs = quest.store.runs
    strips = plan_of(quest, queries._strip_statement(runs, 2), {"n0": "a", "n1": "b"})
    assert strips.count("ix_quest_job_log_finished") == 2, strips
    for kind in ("success_ends", "rows"):
        found = plan_of(quest, queries._lookup(runs, "sqlite", kind), {"names": '["a", "b"]'})
        assert "ix_quest_job_log_finished" in found, (kind, found)
        assert "SCAN walked" not in found and "SCAN quest_job_log" not in found, (kind, found)
    # The outcome trigger's look for a newer finished run of the script, as it says it.
    newer = plan_of(
        quest,
        text(
            f"SELECT 1 FROM quest_job_log WHERE name = :name AND {FINISHED_WHERE} "
            "AND created_at > :at"
        ),
        {"name": "a", "at": "2026-03-02 09:00:00.000000"},
    )
    assert "ix_quest_job_log_finished" in newer, newer


def test_the_queue_page_reads_due_rows_in_claim_order_from_the_partial_index(
    quest: Quest,
) -> None:
    early = add(quest, "ingest", RunStatus.queued, NOW, run_after=NOW - timedelta(minutes=5))
    late = add(quest, "ingest", RunStatus.queued, NOW, run_after=NOW + timedelta(minutes=5))
    add(quest, "ingest", RunStatus.succeeded, NOW - timedelta(minutes=9))
    page = queries.queue(quest, NOW)
    assert [row["id"] for row in page.runs] == [early, late]
    if quest.store.dialect != "sqlite":
        return
    found = plan_of(quest, queries._queued_page(quest.store.runs, "sqlite"), {})
    assert "ix_quest_job_log_due" in found, found
    assert "TEMP B-TREE" not in found, found
