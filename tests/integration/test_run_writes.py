"""What every run writes stays cheap: the finished runs are said with two statuses (SQLite tests a
longer list through a temporary b-tree each time), the JobLog has no (status, run_after) index,
SQLite keeps the leases in their key's b-tree, a lease is taken by one statement's row count, and
migration q0007 goes up from q0006 and back down on both databases with the data in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, inspect, text, update

from quest.enums import RunStatus
from quest.migrate import config
from quest.models import FINISHED_WHERE
from quest.store import Store, make_engine
from tests.integration.conftest import job_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def write(store: Store, *rows: dict[str, Any]) -> None:
    with store.engine.begin() as connection:
        connection.execute(insert(store.runs), list(rows))


def end(store: Store, run_id: str, status: RunStatus) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            update(store.runs).where(store.runs.c.id == run_id).values(status=status)
        )


def sqlite_schema(store: Store) -> dict[str, str]:
    with store.engine.connect() as connection:
        return {
            name: sql
            for name, sql in connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            )
        }


def test_the_finished_runs_are_every_status_but_queued_and_running() -> None:
    unfinished = {status.value for status in RunStatus if not status.finished}
    assert unfinished == {"queued", "running"}
    assert FINISHED_WHERE == "status NOT IN ('queued', 'running')"


def test_no_statement_of_a_run_tests_a_list_of_finished_statuses(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the temporary b-tree of an IN list is SQLite's")
    schema = sqlite_schema(store)
    for name in ("ix_quest_job_log_finished", "quest_outcome_on_insert", "quest_outcome_on_update"):
        assert "NOT IN ('queued', 'running')" in schema[name], name
        assert "'succeeded', 'failed'" not in schema[name], name
    assert "ix_quest_job_log_status_run_after" not in schema
    assert "WITHOUT ROWID" in schema["quest_leases"]
    assert "sqlite_autoindex_quest_leases_1" not in schema


def test_a_lease_is_taken_once_renewed_by_its_run_and_taken_over_when_expired(
    store: Store,
) -> None:
    take = store.acquire_lease
    assert take("cleanup", run_id="a", owner="n1", now=NOW, ttl=TTL)
    assert not take("cleanup", run_id="b", owner="n2", now=NOW + timedelta(seconds=1), ttl=TTL)
    assert take("cleanup", run_id="a", owner="n1", now=NOW + timedelta(seconds=2), ttl=TTL)
    held = store.lease("cleanup")
    assert held is not None and held["expires_at"] == NOW + timedelta(seconds=2) + TTL
    assert not take("cleanup", run_id="b", owner="n2", now=NOW + timedelta(seconds=31), ttl=TTL)
    assert take("cleanup", run_id="b", owner="n2", now=NOW + timedelta(seconds=32), ttl=TTL)
    assert store.lease("cleanup") == {
        "name": "cleanup",
        "run_id": "b",
        "owner": "n2",
        "acquired_at": NOW + timedelta(seconds=32),
        "expires_at": NOW + timedelta(seconds=32) + TTL,
    }
    store.release_lease("cleanup", run_id="a")  # not its holder: nothing happens
    assert store.lease("cleanup") is not None
    store.release_lease("cleanup", run_id="b")
    assert store.lease("cleanup") is None
    assert take("cleanup", run_id="c", owner="n1", now=NOW + timedelta(seconds=33), ttl=TTL)


def test_the_next_due_run_is_read_from_the_index_of_due_runs(store: Store) -> None:
    assert store.next_queued() is None
    write(
        store,
        job_row("cleanup", RunStatus.queued, NOW, run_after=NOW + timedelta(minutes=5)),
        job_row("cleanup", RunStatus.queued, NOW, run_after=NOW + timedelta(minutes=2)),
        job_row("cleanup", RunStatus.failed, NOW, run_after=NOW - timedelta(minutes=9)),
        job_row("cleanup", RunStatus.running, NOW, run_after=NOW - timedelta(minutes=8)),
    )
    assert store.next_queued() == NOW + timedelta(minutes=2)
    if store.dialect == "sqlite":
        with store.engine.connect() as connection:
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT min(run_after) FROM quest_job_log "
                "WHERE likely(status = 'queued')"
            ).all()
        assert "ix_quest_job_log_due" in str(plan)


def _indexes(store: Store) -> set[str]:
    return {ix["name"] for ix in inspect(store.engine).get_indexes("quest_job_log")}


def test_q0007_goes_up_from_q0006_and_back_with_the_rows_in_place(database_url: str) -> None:
    from alembic import command

    store = Store(make_engine(database_url))
    try:
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0006")
        assert "ix_quest_job_log_status_run_after" in _indexes(store)
        early = job_row("cleanup", RunStatus.succeeded, NOW - timedelta(hours=2))
        running = job_row("cleanup", RunStatus.running, NOW - timedelta(hours=1))
        write(store, early, running)
        assert store.acquire_lease("cleanup", run_id=running["id"], owner="n1", now=NOW, ttl=TTL)

        store.ensure_schema()
        assert "ix_quest_job_log_status_run_after" not in _indexes(store)
        assert store.lease("cleanup") is not None
        assert store.outcomes()["cleanup"].status is RunStatus.succeeded
        # The trigger is in place: the running run ends and is the outcome.
        end(store, running["id"], RunStatus.failed)
        assert store.outcomes()["cleanup"].status is RunStatus.failed
        with store.engine.connect() as connection:
            found = connection.execute(
                text(f"SELECT id FROM quest_job_log WHERE {FINISHED_WHERE}")
            ).scalars()
            assert set(found) == {early["id"], running["id"]}

        with store.writer.begin() as connection:
            command.downgrade(config(store, None, connection), "q0006")
        assert "ix_quest_job_log_status_run_after" in _indexes(store)
        assert store.lease("cleanup") is not None
        if store.dialect == "sqlite":
            schema = sqlite_schema(store)
            assert "WITHOUT ROWID" not in schema["quest_leases"]
            assert "'succeeded', 'failed'" in schema["quest_outcome_on_update"]
            assert "'succeeded', 'failed'" in schema["ix_quest_job_log_finished"]
        # q0006's trigger keeps the outcomes again.
        later = job_row("cleanup", RunStatus.running, NOW)
        write(store, later)
        end(store, later["id"], RunStatus.succeeded)
        assert store.outcomes()["cleanup"].status is RunStatus.succeeded
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0007")
        assert "ix_quest_job_log_status_run_after" not in _indexes(store)
        assert store.lease("cleanup") is not None
    finally:
        store.dispose()
