"""A claim whose answer is lost (PostgreSQL: the connection went under its statement or its
COMMIT) may have started runs no one was handed: the owner's next claims take them back, each
exactly once, and nothing else."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from quest import RunStatus
from quest.enums import Trigger
from quest.store import Limits, Store, make_engine
from quest.store._engine import Database
from quest.store.queue import Queue
from tests.conftest import postgres_schema
from tests.integration.conftest import queued_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = {"owner_host": "h1", "owner_pid": 7}


def stocked(url: str) -> Store:
    store = Store(make_engine(url))
    store.ensure_schema()
    for n in range(3):
        store.enqueue_run(queued_row(f"run-{n}", "work", NOW - timedelta(seconds=10 - n)))
    return store


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:
    with postgres_schema(postgres_url) as url:
        store = stocked(url)
        yield store
        store.dispose()


def answers_lost(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """The next *count* transactions of their own commit, then lose their answer."""
    transaction = Database.transaction
    left = [count]

    @contextmanager
    def lost(self: Database) -> Iterator[Connection]:
        with transaction(self) as connection:
            yield connection
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Database, "transaction", lost)


def running(store: Store) -> int:
    return store.count_runs("work", RunStatus.running)


pytestmark = pytest.mark.postgres


def test_two_claims_looking_at_once_take_a_lost_run_back_once(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim at T commits run-0 and loses its answer. Its retry (at T) takes run-0 back while
    another thread's claim looks for it too, its update waiting on the retry's: one of them
    gets it."""
    answers_lost(monkeypatch, 1)
    looking, retried = threading.Event(), threading.Event()
    got: dict[str, list[str]] = {}
    orphans, lose = Queue._orphans, Queue._lose

    class Held:
        def __init__(self, connection: Connection) -> None:
            self.connection = connection

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            looking.set()
            assert retried.wait(10)
            return self.connection.execute(*args, **kwargs)

    def held_orphans(self: Queue, connection: Any, *args: Any) -> Any:
        if threading.current_thread().name == "other":
            connection = Held(connection)
        return orphans(self, connection, *args)

    def other_looks(self: Queue, plan: Any, ids: Any = None) -> None:
        lose(self, plan) if ids is None else lose(self, plan, ids)
        if "thread" not in got:
            claim = lambda: got.__setitem__(  # noqa: E731
                "other",
                [
                    r["id"]
                    for r in pg.claim_queued(now=NOW + timedelta(seconds=2), limit=1, **OWNER)
                ],
            )
            got["thread"] = thread = threading.Thread(target=claim, name="other")  # type: ignore[assignment]
            thread.start()
            assert looking.wait(10)

    monkeypatch.setattr(Queue, "_orphans", held_orphans)
    monkeypatch.setattr(Queue, "_lose", other_looks)
    mine = [r["id"] for r in pg.claim_queued(now=NOW, limit=1, **OWNER)]
    retried.set()
    got["thread"].join(10)  # type: ignore[attr-defined]
    assert mine == ["run-0"]
    assert got["other"] == ["run-1"], "run-0 was handed to both claims"


def test_a_rolled_back_take_back_is_looked_for_again(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both attempts of a claim commit run-0 and lose their answer; both attempts of a claim 6 s
    later take it back and die before their commit: a later claim still finds run-0."""
    answers_lost(monkeypatch, 2)
    with pytest.raises(OperationalError):
        pg.claim_queued(now=NOW, limit=1, **OWNER)
    assert running(pg) == 1
    claim, failing = Queue._claim, [1, 1]

    def dies(self: Queue, *args: Any) -> Any:
        if failing and failing.pop():
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return claim(self, *args)

    monkeypatch.setattr(Queue, "_claim", dies)
    with pytest.raises(OperationalError):
        pg.claim_queued(now=NOW + timedelta(seconds=6), limit=3, **OWNER)
    later = pg.claim_queued(now=NOW + timedelta(seconds=20), limit=3, **OWNER)
    assert sorted(r["id"] for r in later) == ["run-0", "run-1", "run-2"]
    assert running(pg) == 3


def test_checked_rows_a_carried_end_took_whose_commit_was_lost_come_back(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of a limited script are checked after the carried end, in a transaction of their
    own: when its answer is lost, the owner's next claim takes back what it committed."""
    limits = {"work": Limits(concurrency=5)}
    [first] = pg.claim_queued(now=NOW, limit=1, limits=limits, **OWNER)
    answers_lost(monkeypatch, 1)
    later = NOW + timedelta(seconds=5)
    with pg.unit(durable=True, about={"run_id": first["id"]}):
        taken = pg.claim_queued_at_commit(now=later, limit=2, limits=limits, **OWNER)
        pg.finish_run(first["id"], {"status": RunStatus.succeeded, "finished_at": later})
    more = pg.claim_queued(now=NOW + timedelta(seconds=30), limit=5, limits=limits, **OWNER)
    handed = [r["id"] for r in taken.items + more]
    assert sorted(handed) == ["run-1", "run-2"]
    assert running(pg) == 2


def test_a_run_started_otherwise_at_the_lost_claim_s_instant_is_not_taken(
    pg: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run this process started itself (a manual or scheduled run), with its heartbeat at the
    instant of a claim that loses its answer, is not that claim's to take back."""
    pg.insert_run(
        {
            "id": "manual-1",
            "name": "work",
            "status": RunStatus.running,
            "trigger": Trigger.manual,
            "attempt": 1,
            "max_attempts": 1,
            "root_id": "manual-1",
            "created_at": NOW,
            "started_at": NOW,
            "heartbeat_at": NOW,
            **OWNER,
        }
    )
    answers_lost(monkeypatch, 1)
    rows = pg.claim_queued(now=NOW, limit=5, **OWNER)
    assert sorted(r["id"] for r in rows) == ["run-0", "run-1", "run-2"]


def test_a_sqlite_claim_that_failed_did_not_commit_and_idle_claims_keep_their_peek(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "database is locked" is an outcome known (nothing committed): no claim is looked
    after for it, and an idle claim still reads before it takes the write lock."""
    store = stocked(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    try:
        claim, busy = Queue._claim, [1]

        def locked(self: Queue, *args: Any) -> Any:
            if busy and busy.pop():
                raise OperationalError("UPDATE", {}, Exception("database is locked"))
            return claim(self, *args)

        monkeypatch.setattr(Queue, "_claim", locked)
        assert len(store.claim_queued(now=NOW, limit=5, **OWNER)) == 3
        assert not store._queue._unsettled
        peeks: list[int] = []
        peek = Queue._peek
        monkeypatch.setattr(Queue, "_peek", lambda self, plan: peeks.append(1) or peek(self, plan))
        assert store.claim_queued(now=NOW + timedelta(seconds=1), limit=5, **OWNER) == []
        assert peeks == [1]
    finally:
        store.dispose()
