"""Each script's latest outcome, kept by the JobLog's trigger: whatever order runs are written and
end in, it says what the JobLog says (the outcome exactly, its instants at most
``Store.outcome_lag`` behind), and an upgrade fills it from the runs there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text, update

from quest.enums import RunStatus
from quest.migrate import config
from quest.store import Store, make_engine
from tests.integration.conftest import job_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FINISHED = [status for status in RunStatus if status.finished]


def write(store: Store, values: dict[str, Any]) -> None:
    with store.engine.begin() as connection:
        connection.execute(insert(store.runs), [values])


def end(store: Store, run_id: str, status: RunStatus) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            update(store.runs).where(store.runs.c.id == run_id).values(status=status)
        )


def truth(rows: list[dict[str, Any]]) -> dict[str, tuple[RunStatus, datetime, datetime | None]]:
    """Per script: the latest finished run's status and created_at, the latest success's."""
    found: dict[str, tuple[RunStatus, datetime, datetime | None]] = {}
    for name in {r["name"] for r in rows}:
        done = [r for r in rows if r["name"] == name and r["status"].finished]
        if not done:
            continue
        latest = max(done, key=lambda r: r["created_at"])
        successes = [r["created_at"] for r in done if r["status"] is RunStatus.succeeded]
        found[name] = (latest["status"], latest["created_at"], max(successes, default=None))
    return found


def agrees(store: Store, rows: list[dict[str, Any]]) -> None:
    kept = store.outcomes()
    expected = truth(rows)
    assert set(kept) == set(expected)
    lag = store.outcome_lag
    for name, (status, latest_at, succeeded_at) in expected.items():
        outcome = kept[name]
        assert outcome.status is status, name
        assert latest_at - lag <= outcome.latest_at <= latest_at, name
        if succeeded_at is None:
            assert outcome.succeeded_at is None, name
        else:
            assert outcome.succeeded_at is not None, name
            assert succeeded_at - lag <= outcome.succeeded_at <= succeeded_at, name
        run = next(r for r in rows if r["name"] == name and r["created_at"] == outcome.latest_at)
        assert run["status"] is status and outcome.run_id == run["id"], name


def test_the_latest_finished_run_by_creation_is_the_outcome(store: Store) -> None:
    minute = timedelta(minutes=1)
    rows = [
        job_row("cleanup", RunStatus.succeeded, NOW - 50 * minute),
        job_row("cleanup", RunStatus.running, NOW - 40 * minute),
        job_row("cleanup", RunStatus.queued, NOW - 30 * minute),
        job_row("report", RunStatus.failed, NOW - 20 * minute),
        job_row("ingest", RunStatus.queued, NOW),
    ]
    for values in rows:
        write(store, values)
    agrees(store, rows)
    assert "ingest" not in store.outcomes()
    # The running run ends after a newer one failed: the newer one still decides.
    newer = job_row("cleanup", RunStatus.failed, NOW - 35 * minute)
    write(store, newer)
    rows.append(newer)
    end(store, rows[1]["id"], RunStatus.succeeded)
    rows[1]["status"] = RunStatus.succeeded
    agrees(store, rows)
    assert store.outcomes()["cleanup"].status is RunStatus.failed
    assert store.outcomes()["cleanup"].succeeded_at == NOW - 40 * minute
    # The queued one is claimed and times out: it is the newest, it decides.
    end(store, rows[2]["id"], RunStatus.running)
    end(store, rows[2]["id"], RunStatus.timed_out)
    rows[2]["status"] = RunStatus.timed_out
    agrees(store, rows)
    assert set(store.outcomes([RunStatus.timed_out, RunStatus.failed])) == {"cleanup", "report"}
    assert set(store.outcomes([RunStatus.succeeded])) == set()


def test_an_outcome_outlives_the_rows_pruned_under_it(store: Store) -> None:
    old = job_row("cleanup", RunStatus.failed, NOW - timedelta(days=90))
    write(store, old)
    store.prune_runs("cleanup", [RunStatus.failed], older_than=NOW - timedelta(days=30), keep=None)
    assert store.get_run(old["id"]) is None
    assert store.outcomes()["cleanup"].status is RunStatus.failed


steps = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=600),  # created, seconds after NOW: ties are rare
        st.sampled_from(FINISHED),
        st.booleans(),  # written queued and ended later, or written finished
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps, data=st.data())
def test_any_order_of_writes_and_ends_keeps_the_outcome(
    store: Store, plan: list[tuple[str, int, RunStatus, bool]], data: st.DataObject
) -> None:
    with store.engine.begin() as connection:
        connection.execute(store.runs.delete())
        connection.execute(text("DELETE FROM quest_outcomes"))
    rows: list[dict[str, Any]] = []
    seen: set[datetime] = set()
    later: list[tuple[dict[str, Any], RunStatus]] = []
    for name, offset, status, deferred in plan:
        at = NOW + timedelta(seconds=offset, microseconds=len(rows))
        if at in seen:
            continue
        seen.add(at)
        values = job_row(name, RunStatus.running if deferred else status, at)
        write(store, values)
        rows.append(values)
        if deferred:
            later.append((values, status))
    for values, status in data.draw(st.permutations(later)):
        end(store, values["id"], status)
        values["status"] = status
    agrees(store, rows)


def test_an_upgrade_fills_the_outcomes_from_the_runs_there(database_url: str) -> None:
    from alembic import command

    store = Store(make_engine(database_url))
    try:
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0005")
        rows = [
            job_row("cleanup", RunStatus.succeeded, NOW - timedelta(hours=3)),
            job_row("cleanup", RunStatus.failed, NOW - timedelta(hours=2)),
            job_row("cleanup", RunStatus.running, NOW - timedelta(hours=1)),
            job_row("report", RunStatus.skipped, NOW - timedelta(hours=5)),
            job_row("report", RunStatus.succeeded, NOW - timedelta(hours=6)),
            job_row("ingest", RunStatus.queued, NOW),
        ]
        for values in rows:
            write(store, values)
        store.ensure_schema()
        kept = store.outcomes()
        assert {name: o.status for name, o in kept.items()} == {
            "cleanup": RunStatus.failed,
            "report": RunStatus.skipped,
        }
        assert kept["cleanup"].succeeded_at == NOW - timedelta(hours=3)
        assert kept["report"].succeeded_at == NOW - timedelta(hours=6)
        assert kept["report"].latest_at == NOW - timedelta(hours=5)
        assert kept["cleanup"].run_id == rows[1]["id"]
        # The trigger is in place: the running run ends and is the outcome.
        end(store, rows[2]["id"], RunStatus.succeeded)
        assert store.outcomes()["cleanup"].status is RunStatus.succeeded
        # And the downgrade takes it all away again.
        with store.writer.begin() as connection:
            command.downgrade(config(store, None, connection), "q0005")
        end(store, rows[0]["id"], RunStatus.failed)
    finally:
        store.dispose()


def test_scripts_without_a_success_since_their_instant(store: Store) -> None:
    hour = timedelta(hours=1)
    rows = [
        job_row("stale", RunStatus.succeeded, NOW - 3 * hour),
        job_row("stale", RunStatus.failed, NOW - 1 * hour),
        job_row("broken", RunStatus.failed, NOW - 1 * hour),
        job_row("fresh", RunStatus.succeeded, NOW - 1 * hour),
        job_row("waiting", RunStatus.queued, NOW),
        job_row("o'quote\"s", RunStatus.succeeded, NOW - 5 * hour),
    ]
    for values in rows:
        write(store, values)
    cuts = {
        "stale": NOW - 2 * hour,
        "broken": NOW - 2 * hour,
        "fresh": NOW - 2 * hour,
        "waiting": NOW - 2 * hour,
        "never-declared-run": NOW,
        "o'quote\"s": (NOW - 4 * hour).astimezone(timezone(timedelta(hours=-5))),
    }
    assert store.unsucceeded_since(cuts) == {
        "stale": NOW - 3 * hour,
        "broken": None,
        "o'quote\"s": NOW - 5 * hour,
    }
    # A cut at the very instant of the success is not after it.
    assert store.unsucceeded_since({"fresh": NOW - hour}) == {}
    assert store.unsucceeded_since({"fresh": NOW - hour + timedelta(microseconds=1)}) == {
        "fresh": NOW - hour
    }
    assert store.unsucceeded_since({}) == {}


def test_the_outcomes_can_be_filled_again_from_the_runs(store: Store) -> None:
    hour = timedelta(hours=1)
    rows = [
        job_row("cleanup", RunStatus.succeeded, NOW - 3 * hour),
        job_row("cleanup", RunStatus.failed, NOW - 2 * hour),
        job_row("report", RunStatus.cancelled, NOW - 2 * hour),
        job_row("ingest", RunStatus.running, NOW),
    ]
    for values in rows:
        write(store, values)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM quest_outcomes"))
        connection.execute(
            text("INSERT INTO quest_outcomes VALUES ('gone', 'failed', 'x', :at, NULL)"),
            {"at": NOW if store.dialect == "postgresql" else "2026-03-02 09:00:00.000000"},
        )
    assert store.rebuild_outcomes() == 2
    agrees(store, rows)
    assert store.outcomes()["cleanup"].run_id == rows[1]["id"]


def test_a_kept_instant_lags_its_script_s_newest_run_by_ten_seconds_at_most(store: Store) -> None:
    """SQLite's ``datetime()`` drops the fraction of a second: the trigger must still rewrite an
    instant that lags by ten seconds and one microsecond."""
    rows = [
        job_row("a", RunStatus.succeeded, NOW + timedelta(seconds=456)),
        job_row("a", RunStatus.succeeded, NOW + timedelta(seconds=466, microseconds=1)),
    ]
    for values in rows:
        write(store, values)
    agrees(store, rows)
    assert store.outcomes()["a"].latest_at == rows[1]["created_at"]


def test_q0010_goes_up_from_q0009_and_back(tmp_path: Path) -> None:
    from alembic import command

    store = Store(make_engine(f"sqlite:///{tmp_path / 'q.sqlite3'}"))

    def windows() -> set[str]:
        with store.engine.connect() as connection:
            found = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            ).scalars()
            return {
                window
                for sql in found
                for window in ("'-9 seconds'", "'-10 seconds'")
                if window in sql
            }

    try:
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0009")
        assert windows() == {"'-10 seconds'"}
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0010")
        assert windows() == {"'-9 seconds'"}
        with store.writer.begin() as connection:
            command.downgrade(config(store, None, connection), "q0009")
        assert windows() == {"'-10 seconds'"}
    finally:
        store.dispose()
