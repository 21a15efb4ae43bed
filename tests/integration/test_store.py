"""The store's claims, wake-ups, nodes and cancel requests, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, inspect, select

from quest.enums import CancelOutcome, RunStatus, Trigger
from quest.models import cancels, pending_secrets
from quest.pool import _forget_connections
from quest.store import Limits, Store, make_engine, node_state
from tests.conftest import HEADER, ROOT, place_file_at, postgres_schema

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
ENQUEUE = """
import sys
from datetime import UTC, datetime
from quest.store import Store, make_engine
store = Store(make_engine(sys.argv[1]))
now = datetime.now(UTC)
store.enqueue_run({
    "id": sys.argv[2], "name": "ping", "status": "queued", "trigger": "enqueued",
    "attempt": 1, "max_attempts": 1, "root_id": sys.argv[2], "created_at": now, "run_after": now,
})
store.dispose()
"""


def queue(
    store: Store,
    run_id: str,
    name: str = "work",
    *,
    at: datetime = NOW,
    trigger: Trigger = Trigger.enqueued,
    scheduled_for: datetime | None = None,
    key: str | None = None,
    secrets: dict[str, Any] | None = None,
) -> str:
    store.enqueue_run(
        {
            "id": run_id,
            "name": name,
            "status": RunStatus.queued,
            "trigger": trigger,
            "attempt": 2 if trigger is Trigger.retry else 1,
            "max_attempts": 3,
            "root_id": run_id,
            "key": key,
            "inputs": {},
            "scheduled_for": scheduled_for,
            "created_at": at,
            "run_after": at,
        },
        secrets,
    )
    return run_id


def claim(store: Store, limit: int = 10, **options: Any) -> list[dict[str, Any]]:
    return store.claim_queued(now=NOW, limit=limit, owner_host="h1", owner_pid=7, **options)


def status(store: Store, run_id: str) -> RunStatus:
    row = store.get_run(run_id)
    assert row is not None
    result: RunStatus = row["status"]
    return result


# -- claims --------------------------------------------------------------------------------------


def test_a_claim_takes_a_batch_and_starts_it(store: Store) -> None:
    for n in range(5):
        queue(store, f"run-{n}", at=NOW - timedelta(seconds=5 - n))
    queue(store, "later", at=NOW + timedelta(seconds=1))
    first = claim(store, 3)
    assert [row["id"] for row in first] == ["run-0", "run-1", "run-2"], "oldest first"
    for row in first:
        assert row["status"] is RunStatus.running
        assert row["started_at"] == row["heartbeat_at"] == NOW
        assert (row["owner_host"], row["owner_pid"]) == ("h1", 7)
        assert status(store, row["id"]) is RunStatus.running
    assert [row["id"] for row in claim(store, 3)] == ["run-3", "run-4"]
    assert claim(store, 3) == [], "the later run is not due"
    assert status(store, "later") is RunStatus.queued


def test_a_claim_of_nothing_due_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def impatient(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")  # fail at once instead of waiting

    store = Store(engine)
    store.ensure_schema()
    queue(store, "later", at=NOW + timedelta(hours=1))
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert claim(store) == []
        writer.execute("ROLLBACK")
    finally:
        writer.close()
        store.dispose()


def test_limits_are_checked_inside_the_claim(store: Store) -> None:
    for n in range(3):
        queue(store, f"one-{n}", "one-at-a-time", at=NOW - timedelta(seconds=10 - n))
    queue(store, "free", "other", at=NOW)
    limits = {"one-at-a-time": Limits(concurrency=1)}
    taken = claim(store, 10, limits=limits)
    assert sorted(row["id"] for row in taken) == ["free", "one-0"]
    assert claim(store, 10, limits=limits) == [], "nothing is taken only to be given back"
    assert status(store, "one-1") is RunStatus.queued
    store.update_run("one-0", {"status": RunStatus.succeeded})
    assert [row["id"] for row in claim(store, 10, limits=limits)] == ["one-1"]


def test_a_lease_is_renewed_only_by_its_run(store: Store) -> None:
    assert store.acquire_lease("nightly", run_id="holder", owner="h9:1", now=NOW, ttl=TTL)
    later = NOW + timedelta(seconds=20)
    assert store.renew_lease("nightly", run_id="holder", now=later, ttl=TTL)
    assert not store.renew_lease("nightly", run_id="other", now=later + TTL, ttl=TTL)
    lease = store.lease("nightly")
    assert lease is not None
    assert lease["expires_at"] == later + TTL
    assert lease["run_id"] == "holder"
    assert not store.acquire_lease("nightly", run_id="other", owner="h9:2", now=later, ttl=TTL)
    assert store.acquire_lease("nightly", run_id="other", owner="h9:2", now=later + TTL, ttl=TTL)


def test_a_retry_of_a_scheduled_run_waits_for_the_lease(store: Store) -> None:
    assert store.acquire_lease("nightly", run_id="holder", owner="h9:1", now=NOW, ttl=TTL)
    queue(store, "retry-1", "nightly", trigger=Trigger.retry, scheduled_for=NOW)
    leases = {"nightly": TTL}
    assert claim(store, leases=leases) == []
    assert status(store, "retry-1") is RunStatus.queued
    lease = store.lease("nightly")
    assert lease is not None and lease["run_id"] == "holder"

    store.release_lease("nightly", run_id="holder")
    [row] = claim(store, leases=leases, owner="h1:7:abc")
    assert row["id"] == "retry-1" and row["status"] is RunStatus.running
    lease = store.lease("nightly")
    assert lease is not None
    assert (lease["run_id"], lease["owner"]) == ("retry-1", "h1:7:abc")
    assert lease["expires_at"] == NOW + TTL
    assert store.acquire_lease("nightly", run_id="retry-1", owner="h1:7:abc", now=NOW, ttl=TTL), (
        "the run holding the lease may take it again"
    )


def test_only_one_scheduled_retry_of_a_script_is_claimed_at_once(store: Store) -> None:
    for n in range(3):
        queue(store, f"retry-{n}", "nightly", trigger=Trigger.retry, scheduled_for=NOW)
    queue(store, "plain", "other")
    taken = claim(store, leases={"nightly": TTL})
    assert sorted(row["id"] for row in taken) == ["plain", "retry-0"]
    assert store.count_runs("nightly", RunStatus.queued) == 2


def test_enqueued_runs_of_a_without_overlapping_script_run_in_parallel(store: Store) -> None:
    assert store.acquire_lease("exclusive", run_id="holder", owner="h9:1", now=NOW, ttl=TTL)
    for n in range(3):
        queue(store, f"e-{n}", "exclusive")
    taken = claim(store, leases={"exclusive": TTL})
    assert len(taken) == 3
    lease = store.lease("exclusive")
    assert lease is not None and lease["run_id"] == "holder", "enqueued runs take no lease"


def test_a_claim_inside_a_unit_of_work_shares_its_transaction(store: Store) -> None:
    queue(store, "a")
    queue(store, "b")
    with pytest.raises(RuntimeError), store.unit():
        assert len(claim(store, 1)) == 1
        raise RuntimeError("the unit fails")
    assert store.count_runs(status=RunStatus.queued) == 2, "rolled back with the unit"
    [first] = claim(store, 1)
    assert first["id"] == "a"
    with store.unit():  # finish a run and take the next in one transaction
        store.update_run("a", {"status": RunStatus.succeeded})
        [row] = claim(store, 1)
    assert row["id"] == "b"
    assert status(store, "a") is RunStatus.succeeded
    assert status(store, "b") is RunStatus.running


@pytest.mark.postgres
def test_concurrent_claimers_never_take_the_same_run(postgres_url: str) -> None:
    with postgres_schema(postgres_url) as url:
        seed = Store(make_engine(url))
        seed.ensure_schema()
        with seed.unit():
            for n in range(300):
                queue(seed, f"run-{n:03}", at=NOW - timedelta(microseconds=n))
        taken: list[list[str]] = [[] for _ in range(4)]
        start = threading.Barrier(4)

        def claimer(index: int) -> None:
            mine = Store(make_engine(url))
            start.wait()
            try:
                while rows := mine.claim_queued(now=NOW, limit=7, owner_host="h", owner_pid=index):
                    taken[index] += [row["id"] for row in rows]
            finally:
                mine.dispose()

        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        every = [run_id for ids in taken for run_id in ids]
        assert len(every) == len(set(every)) == 300
        assert seed.count_runs(status=RunStatus.running) == 300
        seed.dispose()


@pytest.mark.postgres
def test_a_claim_whose_connection_was_lost_is_retried_and_loses_no_run(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with postgres_schema(postgres_url) as url:
        store = Store(make_engine(url))
        store.ensure_schema()
        queue(store, "survivor")
        store.engine.dispose()
        with store.engine.connect() as connection:
            backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killer = make_engine(postgres_url)
        try:
            with killer.begin() as connection:
                connection.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": backend})
        finally:
            killer.dispose()
        with caplog.at_level(logging.WARNING, logger="quest.store"):
            [row] = claim(store)
        assert row["id"] == "survivor" and row["status"] is RunStatus.running
        assert "claim lost its database connection" in caplog.text
        assert claim(store) == []
        store.dispose()


# -- wake-ups ------------------------------------------------------------------------------------


def test_an_enqueue_from_another_process_wakes_a_waiter(store: Store, database_url: str) -> None:
    waiter = store.waiter()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", ENQUEUE, database_url, "from-elsewhere"],
            cwd=ROOT,
        )
        try:
            woken = waiter.wait(60)
        finally:
            assert child.wait(60) == 0
        assert woken
        while store.get_run("from-elsewhere") is None:  # a wake-up from someone else came first
            assert waiter.wait(60)
    finally:
        waiter.close()


def test_wake_interrupts_a_wait(store: Store) -> None:
    waiter = store.waiter()
    try:
        assert waiter.wait(0.01) is False
        ringer = threading.Thread(target=waiter.wake)
        ringer.start()
        assert waiter.wait(60) is True
        ringer.join()
    finally:
        waiter.close()


def test_a_cancel_request_wakes_a_waiter(store: Store) -> None:
    queue(store, "busy")
    claim(store)
    waiter = store.waiter()
    try:
        assert store.request_cancel("busy", by="ops@desk", now=NOW)
        assert waiter.wait(60) is True
    finally:
        waiter.close()


def test_a_requeue_wakes_a_waiter(store: Store) -> None:
    queue(store, "busy")
    claim(store)
    waiter = store.waiter()
    try:
        assert waiter.wait(0.01) is False
        store.requeue("busy", run_after=NOW + timedelta(seconds=1))
        assert waiter.wait(60) is True
        assert status(store, "busy") is RunStatus.queued
    finally:
        waiter.close()


def test_a_wake_after_close_writes_into_no_file_that_took_its_descriptors(
    store: Store, tmp_path: Path
) -> None:
    """A closed waiter's descriptor numbers are free again, and the next file the process opens
    gets one: a database file a pooled connection opens in another thread. A wake-up that comes
    after the close (a run ending during a shutdown) must not write into that file, and closing
    the waiter again must not close it."""
    waiter = store.waiter()
    bell = waiter._bell  # type: ignore[attr-defined]
    numbers = (bell.read, bell.write)
    waiter.close()
    target = tmp_path / "reopened.sqlite3"
    target.write_bytes(HEADER)
    placed = place_file_at(target, numbers)
    try:
        assert placed, "the waiter's descriptor numbers were taken by something else"
        waiter.wake()
        waiter.close()
        assert target.read_bytes() == HEADER
        assert all(os.path.samestat(os.fstat(number), target.stat()) for number in placed)
    finally:
        for number in placed:
            with contextlib.suppress(OSError):
                os.close(number)


# -- forked processes ----------------------------------------------------------------------------


def files_open_on(path: Path) -> set[int]:
    """This process's descriptors open on *path*."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found.add(int(name))
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_a_forked_process_never_closes_the_sqlite_connections_it_inherited(tmp_path: Path) -> None:
    """The worker template drops the supervisor's pooled connections and collects its garbage:
    SQLite must not run on the supervisor's handles there (a collected connection closes its
    own), so the inherited descriptors stay open, unused."""
    path = tmp_path / "quest.sqlite3"
    store = Store(make_engine(f"sqlite:///{path}"))
    store.ensure_schema()
    store.check()  # a connection waits in the pool
    inherited = files_open_on(path)
    assert inherited
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _forget_connections(SimpleNamespace(store=store))  # type: ignore[arg-type]
            gc.collect()
            code = 0 if files_open_on(path) == inherited else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child closed an inherited connection"
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    store.dispose()


@pytest.mark.postgres
def test_a_listener_that_cannot_listen_closes_what_it_opened(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from quest.store import wake

    opened: list[Any] = []
    connect = psycopg.connect

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(psycopg, "connect", recording)
    pipes = len(os.listdir("/proc/self/fd"))
    with pytest.raises(psycopg.Error):
        wake.Listener(postgres_url, 'no "such" channel')
    assert len(opened) == 1 and opened[0].closed
    assert len(os.listdir("/proc/self/fd")) == pipes, "the self-pipe is closed too"


@pytest.mark.postgres
def test_a_closed_listener_never_connects_again(postgres_url: str) -> None:
    from quest.store import wake

    listener = wake.Listener(postgres_url, "quest")
    listener.close()
    assert listener.wait(0.01) is False
    assert listener._connection is None


@pytest.mark.postgres
def test_a_listener_comes_back_after_its_connection_is_lost(postgres_url: str) -> None:
    with postgres_schema(postgres_url) as url:
        store = Store(make_engine(url))
        store.ensure_schema()
        waiter = store.waiter()
        killer = make_engine(postgres_url)
        try:
            with killer.begin() as connection:
                listening = waiter._connection.info.backend_pid  # type: ignore[attr-defined]
                connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(%(pid)s)", {"pid": listening}
                )
            assert waiter.wait(60) is True, "the caller is told to look again"
            queue(store, "after")
            while store.get_run("after") is None:
                assert waiter.wait(60)
            assert waiter.wait(60) is True
        finally:
            waiter.close()
            killer.dispose()
            store.dispose()


# -- nodes ---------------------------------------------------------------------------------------


def test_nodes_with_their_running_runs(store: Store) -> None:
    alive = store.register_node(
        host="h1", pid=7, version="0.1.0", now=NOW, concurrency=4, isolation="process"
    )
    silent = store.register_node(
        host="h2", pid=8, version="0.1.0", now=NOW, concurrency=2, isolation="thread"
    )
    gone = store.register_node(
        host="h3", pid=9, version="0.1.0", now=NOW, concurrency=1, isolation="process"
    )
    queue(store, "mine")
    queue(store, "queued-still", at=NOW + timedelta(hours=1))
    claim(store)
    later = NOW + timedelta(seconds=40)
    store.beat_node(alive, later)
    store.stop_node(gone, later)
    found = {node["id"]: node for node in store.nodes()}
    assert set(found) == {alive, silent, gone}
    assert [run["id"] for run in found[alive]["runs"]] == ["mine"]
    assert found[alive]["runs"][0]["name"] == "work"
    assert found[alive]["runs"][0]["started_at"] == NOW
    assert found[silent]["runs"] == []
    assert found[alive]["concurrency"] == 4 and found[silent]["isolation"] == "thread"
    states = {key: node_state(node, now=later, ttl=TTL) for key, node in found.items()}
    assert states == {alive: "alive", silent: "lost", gone: "stopped"}
    assert store.prune_nodes(NOW + timedelta(seconds=1)) == 1, "only the silent node"
    assert {node["id"] for node in store.nodes()} == {alive, gone}


# -- cancel --------------------------------------------------------------------------------------


def test_cancel_of_an_unknown_run(store: Store) -> None:
    result = store.request_cancel("nope", by="ops@desk", now=NOW)
    assert result.outcome is CancelOutcome.unknown and not result


def test_cancel_of_a_finished_run_changes_nothing(store: Store) -> None:
    queue(store, "done")
    store.update_run("done", {"status": RunStatus.succeeded, "finished_at": NOW})
    result = store.request_cancel("done", by="ops@desk", now=NOW)
    assert (result.outcome, result.status) == (CancelOutcome.finished, RunStatus.succeeded)
    assert status(store, "done") is RunStatus.succeeded
    assert store.cancel_requests(["done"]) == {}


def test_cancel_of_a_queued_run_ends_it_before_any_claim(store: Store) -> None:
    queue(store, "waiting", secrets={"token": "s3cr3t"})
    result = store.request_cancel("waiting", by="ann@desk", now=NOW)
    assert (result.outcome, result.status) == (CancelOutcome.cancelled, RunStatus.cancelled)
    row = store.get_run("waiting")
    assert row is not None
    assert row["status"] is RunStatus.cancelled and row["finished_at"] == NOW
    assert "ann@desk" in row["reason"] and "ann@desk" in row["error"]
    assert claim(store) == []
    assert store.secrets_for("waiting") == {}
    with store.engine.connect() as connection:
        assert connection.execute(select(pending_secrets)).all() == []


def test_cancel_of_a_running_run_is_a_request(store: Store) -> None:
    queue(store, "busy")
    queue(store, "other")
    claim(store)
    result = store.request_cancel("busy", by="ann@desk", now=NOW)
    assert (result.outcome, result.status) == (CancelOutcome.requested, RunStatus.running)
    assert result.owner == "h1:7"
    assert status(store, "busy") is RunStatus.running
    assert store.request_cancel("busy", by="bob@desk", now=NOW), "asking twice is fine"
    assert store.cancel_requests(["busy", "other", "unknown"]) == {"busy": "ann@desk"}
    assert store.cancel_requests([]) == {}
    store.forget_cancel("busy")
    assert store.cancel_requests(["busy"]) == {}


def test_requests_of_runs_no_longer_running_are_pruned(store: Store) -> None:
    queue(store, "busy")
    queue(store, "ended")
    claim(store)
    store.request_cancel("busy", by="ann@desk", now=NOW)
    store.request_cancel("ended", by="ann@desk", now=NOW)
    store.update_run("ended", {"status": RunStatus.succeeded, "finished_at": NOW})
    assert store.prune_cancels() == 1
    assert store.cancel_requests(["busy", "ended"]) == {"busy": "ann@desk"}


def test_a_stale_run_with_a_cancel_request_ends_cancelled_not_abandoned(store: Store) -> None:
    queue(store, "asked")
    queue(store, "silent")
    claim(store)
    store.request_cancel("asked", by="ann@desk", now=NOW)
    ended = {row["id"]: row for row in store.abandon_stale(now=NOW + 2 * TTL, ttl=TTL)}
    assert ended["asked"]["status"] is RunStatus.cancelled
    assert ended["silent"]["status"] is RunStatus.abandoned
    assert status(store, "asked") is RunStatus.cancelled
    assert "ann@desk" in (store.get_run("asked") or {})["error"]
    assert status(store, "silent") is RunStatus.abandoned
    with store.engine.connect() as connection:
        assert connection.execute(select(cancels)).all() == []


# -- schema --------------------------------------------------------------------------------------


def test_the_schema_has_the_due_index_nodes_and_cancels(store: Store) -> None:
    from sqlalchemy import inspect

    from quest import migrate

    assert migrate.current(store) == {"q0010"}
    inspector = inspect(store.engine)
    assert {"quest_nodes", "quest_cancels", "quest_outcomes"} <= set(inspector.get_table_names())
    indexes = {ix["name"]: ix for ix in inspector.get_indexes("quest_job_log")}
    assert indexes["ix_quest_job_log_due"]["column_names"] == ["run_after", "created_at", "id"]
    assert indexes["ix_quest_job_log_name_created"]["column_names"] == ["name", "created_at"]
    assert indexes["ix_quest_job_log_finished"]["column_names"] == ["name", "created_at", "status"]
    assert indexes["ix_quest_job_log_status_created"]["column_names"] == [
        "status",
        "created_at",
        "duration_ms",
    ]


def test_the_finished_index_holds_finished_runs_only(store: Store) -> None:
    """The partial index of finished runs is what the dashboard's lookups of each script's
    latest outcome read; its condition must leave out every unfinished status and no other."""
    from sqlalchemy import text

    from quest.models import FINISHED_WHERE

    names = {status.value for status in RunStatus if status.finished}
    unfinished = ", ".join(f"'{s.value}'" for s in RunStatus if not s.finished)
    assert f"status NOT IN ({unfinished})" == FINISHED_WHERE
    for status_ in RunStatus:
        queue(store, f"run-{status_.value}")
        store.update_run(f"run-{status_.value}", {"status": status_})
    with store.engine.connect() as connection:
        if store.dialect == "sqlite":
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT status FROM quest_job_log WHERE name = 'x' AND "
                f"{FINISHED_WHERE} ORDER BY created_at DESC LIMIT 1"
            ).all()
            assert "ix_quest_job_log_finished" in str(plan)
        found = connection.execute(
            text(f"SELECT status FROM quest_job_log WHERE {FINISHED_WHERE}")
        ).scalars()
        assert set(found) == names


def test_migrations_do_not_import_the_store() -> None:
    code = "import sys, quest.migrate; sys.exit('quest.store' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_a_start_creates_only_the_tables_the_database_lacks(store: Store) -> None:
    from quest.migrate import create_missing

    with store.writer.begin() as connection:
        connection.exec_driver_sql("DROP TABLE quest_script_state")
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        create_missing(store)
        created = [s for s in statements if s.lstrip().upper().startswith("CREATE TABLE")]
        assert len(created) == 1 and "quest_script_state" in created[0]
        statements.clear()
        create_missing(store)
        assert not [s for s in statements if "CREATE" in s.upper()]
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    with store.engine.connect() as connection:
        assert "quest_script_state" in inspect(connection).get_table_names()
    store.set_paused("work", True, now=NOW)
    assert store.is_paused("work")


def test_every_sqlite_connection_gets_the_store_s_pragmas(tmp_path: Path) -> None:
    from quest.store._engine import WAL_CHECKPOINT_PAGES

    engine = make_engine(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    try:
        for _ in range(2):
            with engine.connect() as connection:
                pragma = connection.exec_driver_sql
                assert pragma("PRAGMA journal_mode").scalar() == "wal"
                assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
                assert pragma("PRAGMA foreign_keys").scalar() == 1
                assert pragma("PRAGMA wal_autocheckpoint").scalar() == WAL_CHECKPOINT_PAGES
            engine.dispose()
    finally:
        engine.dispose()
