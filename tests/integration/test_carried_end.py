"""PostgreSQL: a worker's next claim carries the end of the run it just finished.

The end (the JobLog row finished if still ``running``) and the claim of the next run go in one
statement, in autocommit: one round trip, counted here from libpq's trace of every message the
client sends (each ``Sync`` and each simple ``Query`` waits for the server's answer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError

from quest import RunStatus, script
from quest.enums import Trigger
from quest.scheduler import Serve
from quest.store import Limits, Store, make_engine
from quest.store._engine import Database, Unit
from quest.store.queue import Queue
from quest.testing import temporary_quest
from tests.conftest import postgres_schema

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
END = {
    "status": RunStatus.succeeded,
    "finished_at": LATER,
    "duration_ms": 5000,
    "result": {"rows": 3},
    "error": None,
    "traceback": None,
    "max_attempts": 1,
}


class Trace:
    """libpq's trace of every connection of an engine, read from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w")
        self.mark = 0

    def start(self) -> None:
        self.file.flush()
        self.mark = self.path.stat().st_size

    def sent(self) -> list[str]:
        """What the client sent since :meth:`start`: message types, with the SQL of queries."""
        self.file.flush()
        with self.path.open() as lines:
            lines.seek(self.mark)
            found = []
            for line in lines:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 4 and parts[1] == "F":
                    found.append(parts[3] if parts[3] != "Query" else f"Query {parts[4]}")
            return found

    def round_trips(self) -> int:
        return sum(1 for sent in self.sent() if sent == "Sync" or sent.startswith("Query"))


@pytest.fixture
def traced(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Store, Trace]]:
    with postgres_schema(postgres_url) as url:
        engine = make_engine(url)
        trace = Trace(tmp_path / "libpq.trace")

        @event.listens_for(engine, "connect")
        def _trace(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.pgconn.trace(trace.file.fileno())

        store = Store(engine)
        store.ensure_schema()
        for n in range(3):
            store.enqueue_run(queued(f"run-{n}", "work", NOW - timedelta(seconds=3 - n)))
        yield store, trace
        store.dispose()
        trace.file.close()


def queued(run_id: str, name: str, at: datetime) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": name,
        "status": RunStatus.queued,
        "trigger": Trigger.enqueued,
        "attempt": 1,
        "max_attempts": 1,
        "root_id": run_id,
        "created_at": at,
        "run_after": at,
    }


def end_and_claim(
    store: Store, run_id: str, *, limit: int = 1, **claim: Any
) -> list[dict[str, Any]]:
    """What a worker does as its run ends: the end, and the claim of its next run."""
    with store.unit(durable=True, about={"run_id": run_id}):
        taken = store.claim_queued_at_commit(
            now=LATER, limit=limit, owner_host="h1", owner_pid=7, **claim
        )
        store.finish_run(run_id, dict(END))
    return taken.items


def test_the_end_and_the_next_claim_are_one_round_trip(traced: tuple[Store, Trace]) -> None:
    store, trace = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    trace.start()
    rows = end_and_claim(store, first["id"])
    assert trace.round_trips() == 1, trace.sent()
    assert not any(sent.startswith("Query") for sent in trace.sent()), "no BEGIN, no COMMIT"
    assert [row["id"] for row in rows] == ["run-1"]
    assert rows[0]["status"] is RunStatus.running and rows[0]["started_at"] == LATER
    ended = store.get_run(first["id"])
    assert ended is not None and ended["status"] is RunStatus.succeeded
    assert ended["result"] == {"rows": 3} and ended["finished_at"] == LATER
    # Committed, seen from another connection.
    with store.engine.connect() as other:
        status = other.execute(text("SELECT status FROM quest_job_log WHERE id = 'run-1'"))
        assert status.scalar() == "running"


def test_an_end_with_nothing_due_is_recorded_and_takes_nothing(
    traced: tuple[Store, Trace],
) -> None:
    store, _ = traced
    rows = store.claim_queued(now=NOW, limit=3, owner_host="h1", owner_pid=7)
    assert end_and_claim(store, rows[0]["id"], limit=2) == []
    ended = store.get_run(rows[0]["id"])
    assert ended is not None and ended["status"] is RunStatus.succeeded


def test_an_end_with_other_writes_commits_with_them_in_one_transaction(
    traced: tuple[Store, Trace],
) -> None:
    store, trace = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    assert store.acquire_lease("work", run_id=first["id"], owner="h1:7", now=NOW, ttl=timedelta(1))
    trace.start()
    with store.unit(durable=True):
        taken = store.claim_queued_at_commit(now=LATER, limit=1, owner_host="h1", owner_pid=7)
        store.release_lease("work", run_id=first["id"])
        store.finish_run(first["id"], dict(END))
    queries = [sent for sent in trace.sent() if sent.startswith("Query")]
    assert len(queries) == 2 and "BEGIN" in queries[0] and "COMMIT" in queries[1]
    assert trace.round_trips() == 4, "BEGIN, the release, the end with the claim, COMMIT"
    assert [row["id"] for row in taken.items] == ["run-1"]
    assert store.lease("work") is None
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]


def test_a_late_end_is_not_written_over_another_serve_s_verdict_and_the_claim_stands(
    traced: tuple[Store, Trace], caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    store.update_run(first["id"], {"status": RunStatus.abandoned})
    with caplog.at_level(logging.WARNING, logger="quest.store"):
        rows = end_and_claim(store, first["id"])
    assert [row["id"] for row in rows] == ["run-1"]
    assert store.get_run(first["id"])["status"] is RunStatus.abandoned  # type: ignore[index]
    late = [r for r in caplog.records if getattr(r, "action", None) == "late_end"]
    assert [r.run_id for r in late] == [first["id"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("alone", [True, False], ids=["autocommit", "in-a-transaction"])
def test_a_limit_checked_after_a_carried_end_counts_that_run_ended(
    traced: tuple[Store, Trace], alone: bool
) -> None:
    """Rows that need checking are checked after the end, which frees the limit's place."""
    store, _ = traced
    limits = {"work": Limits(concurrency=1)}
    [first] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7, limits=limits)
    assert store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7, limits=limits) == []
    with store.unit(durable=True):
        taken = store.claim_queued_at_commit(
            now=LATER, limit=2, owner_host="h1", owner_pid=7, limits=limits
        )
        if not alone:
            store.forget_cancel(first["id"])
        store.finish_run(first["id"], dict(END))
    assert [row["id"] for row in taken.items] == ["run-1"], "one at a time, the next one"
    assert store.count_runs("work", RunStatus.running) == 1


def test_a_carried_end_that_fails_before_the_database_commits_on_its_own(
    traced: tuple[Store, Trace], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)

    def refused(self: Queue, connection: Any, plan: Any, end: Any) -> None:
        raise OperationalError("WITH ended AS ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Queue, "_carry", refused)
    rows = end_and_claim(store, first["id"])
    assert [row["id"] for row in rows] == ["run-1"]
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.count_runs("work", RunStatus.running) == 1


@pytest.mark.parametrize("seen", [False, True], ids=["answer-lost", "failed-after-answer"])
def test_a_carried_end_whose_outcome_is_unknown_loses_no_run(
    traced: tuple[Store, Trace],
    monkeypatch: pytest.MonkeyPatch,
    seen: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The statement committed, then the connection went (before its answer came, or after its
    rows were read): the end stands, and the run it claimed comes back to the worker (adopted),
    not left ``running`` with no one running it."""
    store, _ = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    carry = Queue._carry

    def unknown(self: Queue, connection: Any, plan: Any, end: Any) -> None:
        carry(self, connection, plan, end)
        if not seen:
            self._recent.clear()  # the answer never came: nothing was seen
        raise OperationalError("WITH ended AS ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Queue, "_carry", unknown)
    with caplog.at_level(logging.WARNING, logger="quest.store"):
        rows = end_and_claim(store, first["id"])
    assert "no longer running" not in caplog.text, "its own end, written again, is no news"
    assert [row["id"] for row in rows] == ["run-1"], "the run the statement took"
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.count_runs("work", RunStatus.running) == 1
    assert store.count_runs("work", RunStatus.queued) == 1


def test_a_run_a_lost_carried_end_took_comes_back_to_its_owner_s_next_claim(
    traced: tuple[Store, Trace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement carrying the end committed but its answer was lost, and the unit's own
    commit, which would have adopted the run it took, fails too (the database is still away):
    the next claim of that owner takes that run back, once, instead of leaving it ``running``
    with no one running it until it is taken for abandoned."""
    store, _ = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    carry, commit = Queue._carry, Unit.commit

    def unknown(self: Queue, connection: Any, plan: Any, end: Any) -> None:
        carry(self, connection, plan, end)
        self._recent.clear()  # the answer never came
        raise OperationalError("WITH ended AS ...", {}, Exception("server closed the connection"))

    def still_away(self: Unit, *args: Any, **kwargs: Any) -> bool:
        raise OperationalError("BEGIN", {}, Exception("connection refused"))

    monkeypatch.setattr(Queue, "_carry", unknown)
    monkeypatch.setattr(Unit, "commit", still_away)
    assert end_and_claim(store, first["id"]) == []
    monkeypatch.setattr(Queue, "_carry", carry)
    monkeypatch.setattr(Unit, "commit", commit)
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.count_runs("work", RunStatus.running) == 1, "run-1, taken by the lost statement"
    back = store.claim_queued(
        now=LATER + timedelta(seconds=1), limit=1, owner_host="h1", owner_pid=7
    )
    assert [row["id"] for row in back] == ["run-1"]
    assert back[0]["status"] is RunStatus.running
    rest = store.claim_queued(
        now=LATER + timedelta(seconds=9), limit=5, owner_host="h1", owner_pid=7
    )
    assert [row["id"] for row in rest] == ["run-2"], "run-1 is taken back once"
    assert not store._queue._unsettled, "a look 5 s after the lost claim found nothing left"


def test_rows_a_claim_committed_before_both_its_attempts_lost_their_answer_come_back(
    traced: tuple[Store, Trace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim outside a unit of work commits, loses its answer, and its one retry does the
    same: the claim fails, and the owner's next claim takes back the run they committed."""
    store, _ = traced
    transaction = Database.transaction
    lost = [2]

    @contextmanager
    def answer_lost(self: Database) -> Iterator[Any]:
        with transaction(self) as connection:
            yield connection
        if lost[0]:
            lost[0] -= 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Database, "transaction", answer_lost)
    with pytest.raises(OperationalError):
        store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    assert store.count_runs("work", RunStatus.running) == 1
    back = store.claim_queued(now=LATER, limit=1, owner_host="h1", owner_pid=7)
    assert [row["id"] for row in back] == ["run-0"]
    rest = store.claim_queued(
        now=LATER + timedelta(seconds=9), limit=5, owner_host="h1", owner_pid=7
    )
    assert sorted(row["id"] for row in rest) == ["run-1", "run-2"]
    assert store.count_runs("work", RunStatus.running) == 3


def test_a_carried_end_stands_when_giving_its_connection_back_fails(
    traced: tuple[Store, Trace], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the statement that carried the end has answered, the unit is committed: a failure
    as its connection is given back does not write the end again nor claim another run."""
    store, trace = traced
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    close = Connection.close

    def failing_close(self: Connection) -> None:
        close(self)
        if self.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Connection, "close", failing_close)
    trace.start()
    rows = end_and_claim(store, first["id"])
    assert [row["id"] for row in rows] == ["run-1"]
    assert trace.round_trips() == 1, trace.sent()
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.count_runs("work", RunStatus.running) == 1
    assert store.count_runs("work", RunStatus.queued) == 1


# -- a serve draining its queue ------------------------------------------------------------------


@script(quest={"without_overlapping": False})
def counted(inputs: Any, ctx: Any) -> str:
    return str(ctx.run_id)


@script(quest={"concurrency": 1, "without_overlapping": False})
def single(inputs: Any, ctx: Any) -> str:
    time.sleep(0.01)
    return str(ctx.run_id)


def test_serves_draining_together_run_each_run_once(tmp_path: Path, postgres_url: str) -> None:
    with (
        postgres_schema(postgres_url) as url,
        temporary_quest(tmp_path, scripts=[counted, single], database_url=url) as app,
    ):
        ids = [app.enqueue("counted") for _ in range(60)] + [
            app.enqueue("single") for _ in range(6)
        ]
        serves = [Serve(app, concurrency=2) for _ in range(2)]
        peak = [0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], app.store.count_runs("single", RunStatus.running))
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for serve in serves:
                serve.start()
            deadline = time.monotonic() + 30
            while app.store.count_runs(status=RunStatus.succeeded) < len(ids):
                assert time.monotonic() < deadline, "every run ends"
                for serve in serves:
                    serve.drain()
                time.sleep(0.01)
            for serve in serves:
                serve.join(10)
        finally:
            stop.set()
            watcher.join()
        rows = app.store.history(limit=None)
        assert sorted(row["id"] for row in rows) == sorted(ids)
        assert all(row["status"] is RunStatus.succeeded for row in rows)
        assert all(row["result"] == row["id"] for row in rows)
        assert peak[0] <= 1, "the concurrency limit held"


def test_a_take_whose_statement_fails_takes_nothing_and_the_unit_still_commits(
    traced: tuple[Store, Trace],
) -> None:
    """PostgreSQL aborts a transaction at a failed statement (its COMMIT then rolls back
    silently): the unit's writes still commit."""
    store, _ = traced

    def refused(connection: Any, count: int) -> list[Any]:
        connection.execute(text("SELECT 1 / 0"))
        return []

    with store.unit():
        store.update_run("run-0", {"status": RunStatus.discarded})
        taken = store.db.take("claim", 1, refused)
    assert taken.items == []
    assert store.get_run("run-0")["status"] is RunStatus.discarded  # type: ignore[index]
