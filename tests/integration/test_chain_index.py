"""A chain's first run is read by its id and its retries through the partial index of chains: a
first attempt (most runs) never enters that index, a chain and the pruning of kept secrets still
find every run of a chain, and migration q0009 goes up from q0008 and back with the rows kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, inspect, select, text, update

from quest.enums import RunStatus, Trigger
from quest.migrate import config
from quest.models import RETRY_WHERE, in_chain
from quest.store import Store, make_engine
from tests.integration.conftest import job_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def write(store: Store, *rows: dict[str, Any]) -> None:
    with store.engine.begin() as connection:
        connection.execute(insert(store.runs), list(rows))


def retry_of(first: dict[str, Any], attempt: int, status: RunStatus) -> dict[str, Any]:
    return job_row(
        first["name"],
        status,
        first["created_at"] + timedelta(minutes=attempt),
        attempt=attempt,
        max_attempts=3,
        root_id=first["id"],
        trigger=Trigger.retry,
    )


def chain(store: Store, root: str) -> set[str]:
    with store.engine.connect() as connection:
        return set(
            connection.execute(select(store.runs.c.id).where(in_chain(store.runs, root))).scalars()
        )


def plan_of_chain(store: Store, connection: Connection) -> str:
    query = select(store.runs.c.id).where(in_chain(store.runs, "x" * 32))
    sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
    if store.dialect == "sqlite":
        return str(connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all())
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return str(connection.exec_driver_sql(f"EXPLAIN {sql}").all())


def root_index(store: Store) -> dict[str, Any]:
    (index,) = [
        ix
        for ix in inspect(store.engine).get_indexes("quest_job_log")
        if ix["name"] == "ix_quest_job_log_root"
    ]
    return index


def index_condition(store: Store) -> str:
    """The WHERE of the index of chains as the database keeps it ('' for a full index)."""
    with store.engine.connect() as connection:
        if store.dialect == "sqlite":
            sql = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_quest_job_log_root'"
            ).scalar_one()
        else:
            sql = connection.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_quest_job_log_root'"
                " AND schemaname = current_schema()"
            ).scalar_one()
    return sql.split(" WHERE ", 1)[1] if " WHERE " in sql else ""


def test_a_chain_is_its_first_run_and_every_retry_and_nothing_else(store: Store) -> None:
    first = job_row("mail", RunStatus.failed, NOW)
    second = retry_of(first, 2, RunStatus.failed)
    third = retry_of(first, 3, RunStatus.queued)
    alone = job_row("mail", RunStatus.succeeded, NOW)
    legacy = {**job_row("mail", RunStatus.succeeded, NOW), "root_id": None}
    write(store, first, second, third, alone, legacy)

    assert chain(store, first["id"]) == {first["id"], second["id"], third["id"]}
    assert chain(store, alone["id"]) == {alone["id"]}
    assert chain(store, legacy["id"]) == {legacy["id"]}
    assert chain(store, "0" * 32) == set()


def test_only_retries_are_in_the_index_of_chains_and_a_chain_is_read_through_it(
    store: Store,
) -> None:
    assert RETRY_WHERE == "root_id <> id"
    condition = index_condition(store)
    assert "root_id" in condition and "<>" in condition and "id" in condition
    with store.engine.begin() as connection:
        plan = plan_of_chain(store, connection)
    assert "ix_quest_job_log_root" in plan
    assert "SCAN quest_job_log" not in plan and "Seq Scan" not in plan


def test_kept_secrets_live_while_any_run_of_their_chain_waits(store: Store) -> None:
    first = job_row("mail", RunStatus.queued, NOW, run_after=NOW)
    store.enqueue_run(first, {"password": "hunter2"})
    assert store.prune_secrets() == 0

    with store.engine.begin() as connection:
        runs = store.runs
        connection.execute(
            update(runs).where(runs.c.id == first["id"]).values(status=RunStatus.failed)
        )
    write(store, retry_of(first, 2, RunStatus.queued))
    assert store.prune_secrets() == 0, "the queued retry still needs the first run's secrets"
    assert store.secrets_for(first["id"]) == {"password": "hunter2"}

    with store.engine.begin() as connection:
        connection.execute(
            update(runs).where(runs.c.root_id == first["id"]).values(status=RunStatus.succeeded)
        )
    assert store.prune_secrets() == 1
    assert store.secrets_for(first["id"]) == {}


def test_q0009_goes_up_from_q0008_and_back_with_the_rows_in_place(database_url: str) -> None:
    from alembic import command

    store = Store(make_engine(database_url))
    try:
        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0008")
        assert index_condition(store) == ""
        first = job_row("mail", RunStatus.failed, NOW)
        retry = retry_of(first, 2, RunStatus.succeeded)
        write(store, first, retry)

        store.ensure_schema()
        condition = index_condition(store)
        assert "<>" in condition, condition
        assert root_index(store)["column_names"] == ["root_id"]
        assert chain(store, first["id"]) == {first["id"], retry["id"]}
        with store.engine.begin() as connection:
            assert "ix_quest_job_log_root" in plan_of_chain(store, connection)

        with store.writer.begin() as connection:
            command.downgrade(config(store, None, connection), "q0008")
        assert index_condition(store) == ""
        assert chain(store, first["id"]) == {first["id"], retry["id"]}
        with store.engine.connect() as connection:
            found = connection.execute(text("SELECT count(*) FROM quest_job_log")).scalar_one()
        assert found == 2

        with store.writer.begin() as connection:
            command.upgrade(config(store, None, connection), "q0009")
        assert "<>" in index_condition(store)
    finally:
        store.dispose()
