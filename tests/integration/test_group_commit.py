"""Group commit on SQLite: units of work that threads commit at the same time share one
transaction, and a queued run's follow-up claim runs as its end commits.

A unit whose kept write blocks holds the group's leadership, so the units committed meanwhile
wait together and go in the next group: every test below is deterministic.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event
from sqlalchemy.exc import IntegrityError, OperationalError

from quest import RunStatus, script
from quest.enums import Trigger
from quest.runner import RunRequest
from quest.scheduler import Serve
from quest.signals import job_complete, job_error
from quest.store import Store, Taken, make_engine
from quest.testing import temporary_quest
from tests.integration.conftest import queued_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEADLINE = 10.0


@pytest.fixture
def statements(tmp_path: Path) -> Iterator[tuple[Store, list[str]]]:
    """A SQLite store, and every statement its connections run."""
    engine = make_engine(f"sqlite:///{tmp_path / 'quest.sqlite3'}")
    seen: list[str] = []
    lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _traced(dbapi_connection: Any, record: Any) -> None:
        last = [""]

        def trace(sql: str) -> None:
            # A trigger's program is traced as the statement that fired it: counted once.
            statement = " ".join(sql.split())
            if statement != last[0]:
                last[0] = statement
                with lock:
                    seen.append(statement)

        dbapi_connection.set_trace_callback(trace)

    store = Store(engine)
    store.ensure_schema()
    for n in range(3):
        store.enqueue_run(queued_row(f"run-{n}", "work", NOW - timedelta(seconds=3 - n)))
    seen.clear()
    yield store, seen
    store.dispose()


def begins(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql == "BEGIN IMMEDIATE")


def claims(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.startswith("UPDATE quest_job_log SET status='running'"))


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


class Group:
    """A leader stuck in its commit, and the units committed behind it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inside = threading.Event()
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: dict[str, BaseException] = {}
        self.taken: dict[str, Taken] = {}
        leader = threading.Thread(target=self._lead)
        leader.start()
        self.threads.append(leader)
        assert self.inside.wait(DEADLINE), "the leader never began its commit"

    def _lead(self) -> None:
        def hold(connection: Connection) -> None:
            self.inside.set()
            assert self.release.wait(DEADLINE)

        with self.store.unit():
            self.store.db.write(hold)

    def end(
        self,
        run_id: str,
        write: Callable[[Connection], None] | None = None,
        *,
        now: datetime = NOW,
    ) -> None:
        """Commit, behind the leader, the end of *run_id* and the claim of a next run."""

        def unit() -> None:
            try:
                with self.store.unit():
                    self.store.update_run(run_id, {"status": RunStatus.succeeded})
                    if write is not None:
                        self.store.db.write(write)
                    self.taken[run_id] = self.store.claim_queued_at_commit(
                        now=now, limit=1, owner_host="h1", owner_pid=7
                    )
            except BaseException as exc:
                self.errors[run_id] = exc

        waiting = len(self.waiting)
        thread = threading.Thread(target=unit)
        thread.start()
        self.threads.append(thread)
        wait_until(lambda: len(self.waiting) == waiting + 1, f"{run_id} waits for the leader")

    @property
    def waiting(self) -> list[Any]:
        group = self.store.db.group
        assert group is not None
        return group._waiting

    def finish(self) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(DEADLINE)
            assert not thread.is_alive()


def test_units_committed_while_a_group_commits_share_the_next(
    statements: tuple[Store, list[str]],
) -> None:
    store, seen = statements
    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    seen.clear()
    group = Group(store)
    group.end(first["id"])
    group.end(second["id"])
    group.finish()

    assert group.errors == {}
    assert begins(seen) == 2, "the leader's group, then one for both ends"
    assert claims(seen) == 1, "both follow-up claims in one statement"
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.get_run(second["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert [row["id"] for row in group.taken[first["id"]].items] == ["run-2"]
    assert group.taken[second["id"]].items == [], "one run left: dealt to the first to end"
    assert store.get_run("run-2")["status"] is RunStatus.running  # type: ignore[index]


def test_runs_claimed_together_start_at_the_latest_claim_s_instant(
    statements: tuple[Store, list[str]],
) -> None:
    store, _ = statements
    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    later = NOW + timedelta(seconds=1)
    group = Group(store)
    group.end(first["id"], now=NOW)
    group.end(second["id"], now=later)
    group.finish()

    [row] = group.taken[first["id"]].items
    assert row["started_at"] == later, "never before an end recorded in the same transaction"
    assert store.get_run(row["id"])["started_at"] == later  # type: ignore[index]


def test_a_group_whose_transaction_fails_commits_each_unit_on_its_own(
    statements: tuple[Store, list[str]],
) -> None:
    store, seen = statements
    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    failures = [OperationalError("UPDATE", {}, Exception("disk I/O error"))]
    written: list[str] = []

    def flaky(connection: Connection) -> None:
        written.append("attempt")
        if failures:
            raise failures.pop()

    seen.clear()
    group = Group(store)
    group.end(first["id"], flaky)
    group.end(second["id"])
    group.finish()

    assert group.errors == {}
    assert written == ["attempt", "attempt"], "the failed group, then its unit alone"
    assert begins(seen) == 4, "the leader, the failed group, then each unit alone"
    for row in (first, second):
        assert store.get_run(row["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    taken = [row["id"] for t in group.taken.values() for row in t.items]
    assert taken == ["run-2"], "the next run claimed once, by one of the ends"
    assert store.get_run("run-2")["status"] is RunStatus.running  # type: ignore[index]


def test_a_unit_whose_write_is_refused_fails_alone(statements: tuple[Store, list[str]]) -> None:
    store, _ = statements
    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)

    def broken(connection: Connection) -> None:
        raise ValueError("not a write")

    group = Group(store)
    group.end(first["id"], broken)
    group.end(second["id"])
    group.finish()

    assert isinstance(group.errors.pop(first["id"]), ValueError), "raised in its own thread"
    assert group.errors == {}
    assert store.get_run(first["id"])["status"] is RunStatus.running  # type: ignore[index]
    assert store.get_run(second["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert [row["id"] for row in group.taken[second["id"]].items] == ["run-2"]
    assert group.taken[first["id"]].items == [], "the refused unit took nothing"


def test_a_take_outside_a_unit_of_work_runs_at_once(statements: tuple[Store, list[str]]) -> None:
    store, _ = statements
    taken = store.claim_queued_at_commit(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    assert [row["id"] for row in taken.items] == ["run-0", "run-1"]
    assert all(row["status"] is RunStatus.running for row in taken.items)


def test_a_take_that_fails_takes_nothing_and_the_unit_still_commits(
    statements: tuple[Store, list[str]],
) -> None:
    store, _ = statements

    def refused(connection: Connection, count: int) -> list[Any]:
        raise OperationalError("UPDATE", {}, Exception("database is locked"))

    store.db.group = None  # the unit's own commit
    with store.unit():
        store.update_run("run-0", {"status": RunStatus.discarded})
        taken = store.db.take("claim", 1, refused)
    assert taken.items == []
    assert store.get_run("run-0")["status"] is RunStatus.discarded  # type: ignore[index]


# -- a serve draining its queue ------------------------------------------------------------------


@script
def tally(inputs: Any, ctx: Any) -> str:
    return ctx.run_id


def test_a_drain_ends_each_run_once_and_receivers_find_its_row_finished(
    tmp_path: Path, database_url: str
) -> None:
    with temporary_quest(tmp_path, scripts=[tally], database_url=database_url) as app:
        ids = [app.enqueue("tally") for _ in range(40)]
        heard: list[tuple[str, Any]] = []
        lock = threading.Lock()

        def receiver(sender: object, event: Any) -> None:
            row = app.store.get_run(event.run_id)
            with lock:
                heard.append((event.run_id, row["status"] if row else None))

        job_complete.connect(receiver)
        job_error.connect(receiver)
        try:
            serve = Serve(app, concurrency=4)
            serve.start()
            serve.drain()
            wait_until(lambda: len(heard) >= len(ids), "every run ends")
            serve.join(DEADLINE)
        finally:
            job_complete.disconnect(receiver)
            job_error.disconnect(receiver)
        assert sorted(run_id for run_id, _ in heard) == sorted(ids), "one end signal per run"
        assert {status for _, status in heard} == {RunStatus.succeeded}, "finished before"
        assert app.store.count_runs("tally", RunStatus.succeeded) == len(ids)
        for row in app.store.history("tally", limit=None):
            assert row["result"] == row["id"]


def test_a_leader_waits_for_an_end_that_said_it_is_coming(
    statements: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, seen = statements
    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    group = store.db.group
    assert group is not None
    monkeypatch.setattr(group, "LINGER", DEADLINE)
    monkeypatch.setattr(group, "COMING_FOR", DEADLINE)
    seen.clear()
    said, go = threading.Event(), threading.Event()

    def coming() -> None:
        store.db.expect()  # as a thread whose worker has just answered
        said.set()
        assert go.wait(DEADLINE)
        with store.unit():
            store.update_run(second["id"], {"status": RunStatus.succeeded})

    def leading() -> None:
        with store.unit():
            store.update_run(first["id"], {"status": RunStatus.succeeded})

    threads = [threading.Thread(target=coming), threading.Thread(target=leading)]
    threads[0].start()
    assert said.wait(DEADLINE)
    threads[1].start()
    wait_until(lambda: group._lingering, "the leader waits for the end that is coming")
    go.set()
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive()

    assert begins(seen) == 1, "both ends in the leader's transaction"
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]
    assert store.get_run(second["id"])["status"] is RunStatus.succeeded  # type: ignore[index]


def test_an_end_that_never_comes_does_not_hold_the_group(
    statements: tuple[Store, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, seen = statements
    [first] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    group = store.db.group
    assert group is not None
    monkeypatch.setattr(group, "LINGER", 0.01)
    said = threading.Event()
    quiet = threading.Thread(target=lambda: (store.db.expect(), said.set()))
    quiet.start()
    assert said.wait(DEADLINE)
    seen.clear()

    with store.unit():
        store.update_run(first["id"], {"status": RunStatus.succeeded})

    quiet.join(DEADLINE)
    assert begins(seen) == 1
    assert store.get_run(first["id"])["status"] is RunStatus.succeeded  # type: ignore[index]


SEEN: dict[str, Any] = {}


@script(quest={"without_overlapping": True})
def watched(inputs: Any, ctx: Any) -> str:
    """Reads its own JobLog row from a connection of its own, as another process would."""
    with sqlite3.connect(SEEN["path"]) as other:
        row = other.execute("SELECT status FROM quest_job_log WHERE id = ?", (ctx.run_id,))
        SEEN.setdefault("statuses", []).append(row.fetchone()[0])
    return "ok"


def test_a_recorded_run_writes_on_the_group_s_connection_and_commits_its_start_first(
    tmp_path: Path,
) -> None:
    """The start (slot claim, lease, JobLog row) and the end run on the group's kept connection:
    no connection is checked out of the pool for them, and the start is committed before the
    script runs."""
    with temporary_quest(tmp_path, scripts=[watched]) as app:
        engine = app.store.engine
        SEEN.clear()
        SEEN["path"] = engine.url.database
        app.runner.run("watched", {})
        checkouts: list[int] = []

        def checked_out(*_: Any) -> None:
            checkouts.append(1)

        event.listen(engine, "checkout", checked_out)
        group = app.store.db.group
        assert group is not None and group._connection is not None
        traced: list[str] = []
        group._connection.connection.driver_connection.set_trace_callback(traced.append)  # type: ignore[union-attr]
        slot = NOW + timedelta(days=3650)
        request = RunRequest(trigger=Trigger.scheduled, scheduled_for=slot, slot=True)
        scheduled = app.runner.run("watched", {}, request)
        manual = app.runner.run("watched", {})
        event.remove(engine, "checkout", checked_out)

        assert scheduled.status is RunStatus.succeeded
        assert manual.status is RunStatus.succeeded
        assert checkouts == [], "every write on the group's connection"
        assert SEEN["statuses"] == ["running"] * 3, "each start committed before its script"
        ends = [sql for sql in traced if sql in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]
        assert ends == ["BEGIN IMMEDIATE", "COMMIT"] * 4, "a start and an end for each run"
        assert app.store.lease("watched") is None, "the lease was released"


def test_units_committed_while_a_unit_holds_the_group_s_connection_wait_for_it(
    statements: tuple[Store, list[str]],
) -> None:
    """A unit that wrote at once (a slot claim) leads the group until it commits: the units
    committed meanwhile wait, then commit together in the next group."""
    store, seen = statements
    group = store.db.group
    assert group is not None
    inside, release = threading.Event(), threading.Event()
    connections: list[Any] = []

    def hold() -> None:
        with store.unit() as unit:
            assert store.claim_slot("work", NOW, run_id="slot-run", owner="h1", now=NOW)
            assert unit is not None
            connections.append(unit.connection)
            inside.set()
            assert release.wait(DEADLINE)

    def end(run_id: str) -> None:
        with store.unit():
            store.update_run(run_id, {"status": RunStatus.succeeded})

    [first, second] = store.claim_queued(now=NOW, limit=2, owner_host="h1", owner_pid=7)
    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(DEADLINE)
    seen.clear()
    enders = [threading.Thread(target=end, args=(row["id"],)) for row in (first, second)]
    for ender in enders:
        ender.start()
    wait_until(lambda: len(group._waiting) == 2, "both ends wait for the holder")
    release.set()
    for thread in (holder, *enders):
        thread.join(DEADLINE)
        assert not thread.is_alive()

    assert connections == [group._connection], "the unit ran on the group's connection"
    assert begins(seen) == 1, "both ends in one group after the holder"
    assert not store.claim_slot("work", NOW, run_id="other", owner="h2", now=NOW)
    for row in (first, second):
        assert store.get_run(row["id"])["status"] is RunStatus.succeeded  # type: ignore[index]


def test_a_unit_on_the_group_s_connection_that_fails_rolls_back_and_lets_the_next_lead(
    statements: tuple[Store, list[str]],
) -> None:
    store, _ = statements
    group = store.db.group
    assert group is not None
    with pytest.raises(RuntimeError), store.unit():
        assert store.claim_slot("work", NOW, run_id="slot-run", owner="h1", now=NOW)
        kept = group._connection
        raise RuntimeError("the run refused")

    assert group._connection is kept, "the connection stays for the next group"
    assert group._holder is None
    assert store.claim_slot("work", NOW, run_id="again", owner="h1", now=NOW), "rolled back"
    [row] = store.claim_queued(now=NOW, limit=1, owner_host="h1", owner_pid=7)
    store.update_run(row["id"], {"status": RunStatus.succeeded})
    assert store.get_run(row["id"])["status"] is RunStatus.succeeded  # type: ignore[index]


def test_a_statement_refused_on_the_group_s_connection_rolls_back_only_its_transaction(
    statements: tuple[Store, list[str]],
) -> None:
    store, seen = statements
    values = {
        "id": "twice",
        "name": "work",
        "status": RunStatus.running,
        "trigger": Trigger.manual,
        "attempt": 1,
        "max_attempts": 1,
        "root_id": "twice",
        "created_at": NOW,
    }
    store.insert_run(values)
    seen.clear()
    with pytest.raises(IntegrityError), store.unit():
        assert store.claim_slot("work", NOW, run_id="twice", owner="h1", now=NOW)
        store.db.write(lambda connection: connection.execute(store._runs.table.insert(), values))
    assert seen[-1] == "ROLLBACK"
    assert store.claim_slot("work", NOW, run_id="again", owner="h1", now=NOW), "rolled back"
    assert seen[-1] == "COMMIT"
