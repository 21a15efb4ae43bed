"""The connection layer every store module shares: engines, units of work, prepared statements.

Only the ``quest.store`` package writes SQL. Every write is a short transaction; on SQLite a
writing transaction starts with ``BEGIN IMMEDIATE`` so that concurrent processes queue on the lock
instead of failing, while plain reads begin deferred and never block anyone.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Enum, MetaData, Table, create_engine, event
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)

from ..config import Settings
from ..errors import ConfigError, DatabaseUnavailable
from ..models import job_log_table

log = logging.getLogger("quest.store")

WRITE_OPTION = "quest_write"
KEPT_OPTION = "quest_kept"
"""Execution option of the group commit's connection: its transactions are begun and ended on
the driver, not through SQLAlchemy (see :class:`_Group`)."""
PING = "quest_ping"
"""Key in a connection's ``info``: a wake-up to send once its transaction commits (SQLite)."""

WAL_CHECKPOINT_PAGES = 10_000
"""SQLite copies the write-ahead log back into the database once it holds this many pages (about
40 MB), in the commit that crosses it. A run writes about 14 pages, mostly the same few again and
again: a checkpoint every 700 runs copies each of those once, where SQLite's default (1,000 pages)
copied them every 70 runs and paid a sync of the database file each time."""


def make_engine(url: str) -> Engine:
    """An engine for *url*; SQLite gets WAL and a busy timeout.

    On SQLite a connection with the ``quest_write`` execution option begins ``IMMEDIATE``, taking
    the write lock up front so that concurrent writers queue instead of failing; plain reads begin
    deferred and never block anyone. PostgreSQL connections are not pinged on checkout: a claim
    that finds its connection lost retries once on a fresh one (see :mod:`quest.store.queue`).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"cannot create the folder of the SQLite database {path}: {exc.strerror}"
                ) from None
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            options = connection.get_execution_options()
            if options.get(KEPT_OPTION):
                return
            immediate = options.get(WRITE_OPTION)
            driver = connection.connection.driver_connection
            driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        return create_engine(url, pool_size=10, max_overflow=20)
    except Exception as exc:
        raise ConfigError(f"database URL {url!r} is not usable: {exc}") from None


@functools.cache
def fallback_job_log(dialect: str | None = None) -> Table:
    """The JobLog of projects whose models module defines none, in a metadata of its own, with
    the partial indexes of *dialect* (of every dialect when ``None``)."""
    return job_log_table(MetaData(), dialect)


def load_models(settings: Settings, dialect: str | None = None) -> tuple[Table, list[MetaData]]:
    """The JobLog table and every metadata to create: the app's models module, then quest's.
    A JobLog of quest's own gets the partial indexes of *dialect* (of every dialect if ``None``)."""
    from ..models import metadata as quest_metadata

    metadatas: list[MetaData] = []
    job_log: Table | None = None
    if settings.models:
        try:
            module = importlib.import_module(settings.models)
        except ModuleNotFoundError as exc:
            if exc.name and settings.models.startswith(exc.name):
                module = None
            else:
                raise
        if module is not None:
            model = getattr(module, "JobLog", None)
            job_log = model.__table__ if model is not None else None
            base = getattr(module, "Base", None)
            if base is not None:
                metadatas.append(base.metadata)
    if job_log is None:
        job_log = fallback_job_log(dialect)
    if job_log.metadata not in metadatas:
        metadatas.append(job_log.metadata)
    metadatas.append(quest_metadata)
    return job_log, metadatas


class Database:
    """An engine with units of work: what every store module writes through.

    ``ping`` is called after a transaction that asked for a wake-up (:meth:`notify`) commits, on
    SQLite; PostgreSQL delivers its ``NOTIFY`` on commit by itself.
    """

    def __init__(self, engine: Engine, ping: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**{WRITE_OPTION: True})
        self.dialect: str = engine.dialect.name
        self.retry_for = 300.0
        self.ping = ping
        self._local = threading.local()
        self._prepared: dict[tuple[int, frozenset[str]], _Prepared] = {}
        self._results: dict[int, list[tuple[str, Callable[[Any], Any] | None]]] = {}
        # SQLite runs one writing transaction at a time: the units of work that several threads
        # commit together go in one (group commit).
        self.group: _Group | None = _Group(self) if self.dialect == "sqlite" else None

    # -- units of work -------------------------------------------------------------------------

    def unit(self, *, durable: bool = False, about: Mapping[str, Any] | None = None) -> _Scope:
        """Group this thread's writes into one transaction, committed when the block ends.

        Writes that return something (a claim, a lease) run at once on the unit's transaction;
        the others (JobLog rows, releases) are kept and run just before the commit. A *durable*
        unit that cannot commit because the database is unreachable replays its kept writes one by
        one with backoff, for up to ``retry_for`` seconds, so that no outcome is lost. A unit
        opened inside another joins it.
        """
        return _Scope(self, durable, about)

    def current(self) -> Unit | None:
        """This thread's open unit of work, if any."""
        unit: Unit | None = getattr(self._local, "unit", None)
        return unit

    def flush(self) -> None:
        """Commit what this thread's unit of work has written so far; the unit stays open."""
        unit = self.current()
        if unit is not None:
            self._commit(unit)

    def _commit(self, unit: Unit) -> None:
        kept, unit.kept = unit.kept, []
        takes, unit.takes = unit.takes, []
        if self.group is not None and unit.connection is None and (kept or takes):
            entry = _Entry(kept, takes)
            if self.group.commit(entry):
                if entry.pinged:
                    self._ping()
                return
        if self.group is None and unit.connection is None and self._carried(unit, kept, takes):
            return
        try:
            pinged = unit.commit(self.writer, kept, takes)
        except (DBAPIError, PendingRollbackError) as exc:
            # Whether the takes committed is not known (the connection may have gone under the
            # COMMIT): what they took is nobody's until someone looks for it.
            for take in takes:
                if take.lost is not None:
                    take.lost()
            # PendingRollbackError: the connection died under an earlier statement of the unit
            # (a follow-up claim whose failure was handled); the kept writes still count.
            if not unit.durable or not kept:
                raise
            unit.replayed = True
            log.warning(
                "a write failed (%s); retrying each with backoff",
                type(exc).__name__,
                extra={**unit.about, "action": "db_retry"},
            )
            for write in kept:
                try:
                    self._retrying(write, unit.about)
                except DBAPIError:
                    log.exception("a write was refused for good", extra=dict(unit.about))
            pinged = True
        if pinged:
            self._ping()

    def _carried(
        self, unit: Unit, kept: list[Callable[[Connection], Any]], takes: list[_Take]
    ) -> bool:
        """Commit a unit whose take carries one of its writes (see :meth:`take`); ``False`` if
        it has none, or if that failed: nothing of it is then known to have committed, and the
        unit commits as usual (a take that lost its connection then looks for the rows it may
        have taken)."""
        if len(takes) != 1 or takes[0].carry is None:
            return False
        carried = [write for write in kept if isinstance(write, Carried)]
        if len(carried) != 1:
            return False
        take, end = takes[0], carried[0]
        assert take.carry is not None
        others = [write for write in kept if write is not end]
        items: list[Any] = []
        pinged = committed = False
        try:
            with self.writer.connect() as connection:
                if others:
                    with connection.begin():
                        for write in others:
                            write(connection)
                        items = take.carry(connection, take.count, end)
                else:
                    connection.execution_options(isolation_level="AUTOCOMMIT")
                    items = take.carry(connection, take.count, end)
                pinged = bool(connection.info.pop(PING, False))
                # Committed from here on: what the take took is this unit's, whatever befalls
                # the connection as it is given back.
                committed = True
        except Exception as exc:
            if committed:
                log.debug("giving back a connection after a carried write failed", exc_info=True)
            else:
                log.warning(
                    "a write carried by a claim failed (%s); committing it on its own",
                    type(exc).__name__,
                    exc_info=not isinstance(exc, DBAPIError | PendingRollbackError),
                    extra={**unit.about, "action": "db_retry"},
                )
                return False
        take.taken.items = items
        if pinged:
            self._ping()
        return True

    def expect(self) -> None:
        """Say that this thread will commit a unit of work in a moment (a run's end, once a
        worker process has answered): a group commit under way may wait a moment for it."""
        if self.group is not None:
            self.group.expect()

    def write(self, write: Callable[[Connection], Any], *, now: bool = False) -> Any:
        """Run *write* in this thread's unit of work (at once when *now*), or in its own
        transaction when no unit is open."""
        unit = self.current()
        if unit is None:
            with self.transaction() as connection:
                return write(connection)
        if now:
            return write(unit.connection_for(self.writer))
        unit.kept.append(write)
        return None

    def take(
        self,
        key: Hashable,
        count: int,
        take: Callable[[Connection, int], list[Any]],
        *,
        at: Any = None,
        carry: Callable[[Connection, int, Carried], list[Any]] | None = None,
        lost: Callable[[], None] | None = None,
    ) -> Taken:
        """Take up to *count* items (claimed rows) in this thread's unit of work, after its kept
        writes, just before it commits; what was taken is in the :class:`Taken` once it has.

        Takes of one *key* that commit together (a group commit) run as one ``take(connection,
        total)``, the *take* given with the latest *at* (a claim's instant: rows claimed together
        start at the latest of them, never before an end recorded with them), and the items are
        dealt out in order. A take that fails, or whose transaction does not commit, takes
        nothing. Outside a unit of work it runs at once, in a transaction of its own.

        *carry*, when given, is the same take carrying one of the unit's kept writes (a
        :class:`Carried`, such as a run's end) in its own statement: on PostgreSQL a unit whose
        only take has one and whose writes include one commits as that one statement, in
        autocommit (one round trip instead of ``BEGIN``, the writes, the take and ``COMMIT``), or,
        when it has other writes, as those and that statement in one transaction.

        *lost*, when given, is called if the unit's commit fails: whether what the take took
        committed is then not known.
        """
        taken = Taken()
        unit = self.current()
        if unit is None:
            with self.transaction() as connection:
                items = take(connection, count)
            taken.items = items
            return taken
        unit.takes.append(_Take(key, count, take, taken, at, carry, lost))
        return taken

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A writing transaction of its own (never the unit's), waking waiters after commit.

        On SQLite it runs on the group commit's connection, as the group's leader: writes are one
        at a time there anyway, and no connection is checked out of the pool for it.
        """
        held = self.group.hold() if self.group is not None else None
        if held is None:
            with self.writer.begin() as connection:
                yield connection
                pinged = connection.info.pop(PING, False)
        else:
            assert self.group is not None
            try:
                yield held
                pinged = held.info.pop(PING, False)
                self.group.finish()
            except BaseException:
                self.group.release(rollback=True)
                raise
            self.group.release(rollback=False)
        if pinged:
            self._ping()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only connection (deferred on SQLite: no lock taken)."""
        with self.engine.connect() as connection:
            yield connection

    def notify(self, connection: Connection, payload: str) -> None:
        """Wake every :class:`~quest.store.wake.Waiter` once *connection*'s transaction commits."""
        if self.dialect == "postgresql":
            connection.exec_driver_sql(
                "SELECT pg_notify(%(channel)s, %(payload)s)",
                {"channel": CHANNEL, "payload": payload},
            )
        else:
            connection.info[PING] = True

    def _ping(self) -> None:
        if self.ping is not None:
            try:
                self.ping()
            except OSError:
                log.debug("could not wake the waiters", exc_info=True)

    def _retrying(self, write: Callable[[Connection], Any], about: Mapping[str, Any]) -> None:
        delay = 0.1
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                with self.writer.begin() as connection:
                    write(connection)
                return
            except IntegrityError:
                return
            except DBAPIError as exc:
                transient = isinstance(exc, OperationalError | InterfaceError)
                if not transient or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "database write failed (%s); retrying in %.1f s",
                    type(exc).__name__,
                    delay,
                    extra={**about, "action": "db_retry"},
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- prepared statements -------------------------------------------------------------------

    def run(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> Any:
        """Execute a hot statement through its :class:`_Prepared` form; returns the cursor."""
        key = (id(statement), frozenset(values))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = _Prepared(statement, self.engine.dialect, values)
        parameters = prepared.parameters(values)
        if self.group is not None:
            cursor = self.group.driver_of(connection).cursor()
        else:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            cursor.execute(prepared.sql, parameters)
        except dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(
                prepared.sql,
                parameters,
                exc,
                dbapi.Error,
                dialect=self.engine.dialect,
            ) from exc
        return cursor

    def rows(
        self, connection: Connection, statement: Any, values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The rows a hot statement returns (``RETURNING``), as dicts of processed values."""
        cursor = self.run(connection, statement, values)
        try:
            raw = cursor.fetchall()
            names = [column[0] for column in cursor.description or ()]
        finally:
            cursor.close()
        processors = self._results.get(id(statement))
        if processors is None:
            processors = self._results[id(statement)] = self._processors(statement, names)
        return [
            {
                name: value if process is None else process(value)
                for (name, process), value in zip(processors, row, strict=True)
            }
            for row in raw
        ]

    def _processors(
        self, statement: Any, names: list[str]
    ) -> list[tuple[str, Callable[[Any], Any] | None]]:
        dialect = self.engine.dialect
        kinds = {
            column["name"]: column["type"] for column in statement.returning_column_descriptions
        }
        found: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name in names:
            kind = kinds[name].dialect_impl(dialect)
            found.append((name, kind.result_processor(dialect, None)))
        return found

    def first(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> Any:
        cursor = self.run(connection, statement, values)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def do(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> int:
        cursor = self.run(connection, statement, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


CHANNEL = "quest"
"""The PostgreSQL ``NOTIFY`` channel of enqueues and cancel requests."""


class _Prepared:
    """A statement compiled once for the driver, with SQLAlchemy's own bind processors.

    The hot writes of every run (the JobLog row, the slot claim, the lease) skip SQLAlchemy's
    per-execution work (cache keys, result set-up): the SQL string and each parameter's type
    processing are computed once, then the driver's cursor runs it inside the same transaction.
    """

    __slots__ = ("defaults", "names", "plan", "positional", "processors", "sql")

    def __init__(self, statement: Any, dialect: Any, keys: Iterable[str]) -> None:
        columns = [key for key in keys if not key.startswith("_")]
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        self.names: list[str] = list(compiled.positiontup if self.positional else compiled.binds)
        self.processors: dict[str, Callable[[Any], Any]] = {}
        self.defaults: dict[str, Any] = {}
        table = getattr(statement, "table", None)
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                if isinstance(bind.type, JSON):
                    processor = _json_binder(processor)
                elif isinstance(bind.type, Enum) and bind.type.enum_class is not None:
                    processor = _enum_binder(processor, bind.type.enum_class)
                self.processors[name] = processor
            column = table.c.get(name) if table is not None else None
            default = getattr(column, "default", None)
            if bind.value is not None and not bind.callable:
                self.defaults[name] = bind.value
            elif default is not None and default.is_scalar:
                self.defaults[name] = default.arg
        self.plan: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (name, self.defaults.get(name), self.processors.get(name)) for name in self.names
        ]

    def parameters(self, values: Mapping[str, Any]) -> Any:
        get = values.get
        processed = [
            get(name, default) if process is None else process(get(name, default))
            for name, default, process in self.plan
        ]
        if self.positional:
            return processed
        return dict(zip(self.names, processed, strict=True))


def _json_binder(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON column's bind *process*, with its text of ``None`` and of ``{}`` (no result, no
    inputs: what most runs write) serialized once instead of at every statement."""
    null, empty = process(None), process({})

    def bind(value: Any) -> Any:
        if value is None:
            return null
        if value.__class__ is dict and not value:
            return empty
        return process(value)

    return bind


def _enum_binder(process: Callable[[Any], Any], members: Iterable[Any]) -> Callable[[Any], Any]:
    """An enum column's bind *process*, with the stored text of each of its *members* found
    once (a status, a trigger)."""
    known = {member: process(member) for member in members}

    def bind(value: Any) -> Any:
        try:
            return known[value]
        except (KeyError, TypeError):
            return process(value)

    return bind


class _Scope:
    """The block of :meth:`Database.unit`: opens this thread's unit of work, or joins the one
    open, and commits it (or rolls it back on an exception) when the block it opened ends."""

    __slots__ = ("about", "db", "durable", "opened")

    def __init__(self, db: Database, durable: bool, about: Mapping[str, Any] | None) -> None:
        self.db = db
        self.durable = durable
        self.about = about
        self.opened: Unit | None = None

    def __enter__(self) -> Unit | None:
        db = self.db
        current = db.current()
        if current is not None:
            return current
        unit = self.opened = Unit(self.durable, dict(self.about or {}), db.group)
        db._local.unit = unit
        return unit

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        unit = self.opened
        if unit is None:
            return
        self.opened = None
        self.db._local.unit = None
        if kind is not None:
            unit.close(commit=False)
            return
        self.db._commit(unit)


class Unit:
    """The open transaction of one thread's unit of work, and the writes kept for its end."""

    __slots__ = ("about", "connection", "durable", "group", "held", "kept", "replayed", "takes")

    def __init__(self, durable: bool, about: dict[str, Any], group: _Group | None = None) -> None:
        self.durable = durable
        self.about = about
        self.group = group
        self.held = False
        """Whether the transaction runs on the group commit's connection (SQLite), this thread
        leading the group until it ends."""
        self.connection: Connection | None = None
        self.kept: list[Callable[[Connection], Any]] = []
        self.takes: list[_Take] = []
        self.replayed = False
        """Whether a commit failed and the kept writes were replayed one by one: what else ran
        on the unit's transaction (a claim) was rolled back."""

    def connection_for(self, engine: Engine) -> Connection:
        if self.connection is None:
            held = self.group.hold() if self.group is not None else None
            if held is not None:
                self.connection = held
                self.held = True
            else:
                self.connection = engine.connect()
                self.connection.begin()
        return self.connection

    def commit(
        self,
        engine: Engine,
        kept: list[Callable[[Connection], Any]],
        takes: list[_Take] | None = None,
    ) -> bool:
        """Run the kept writes, then the takes, and commit; whether the transaction asked to
        wake waiters. A take that fails takes nothing; the writes still commit."""
        takes = takes or []
        if self.connection is None and not kept and not takes:
            return False
        connection = self.connection_for(engine)
        try:
            for write in kept:
                write(connection)
            found: list[list[Any]] = []
            for take in takes:
                try:
                    found.append(take.take(connection, take.count))
                except Exception:
                    log.warning("a take at commit failed; it takes nothing", exc_info=True)
                    found.append([])
                    if _aborted(connection):
                        # PostgreSQL ended the transaction at the failed statement: its COMMIT
                        # would roll the writes back without a word. They go again, alone.
                        connection.rollback()
                        connection.begin()
                        for write in kept:
                            write(connection)
                        found = [[] for _ in takes]
                        break
            pinged = bool(connection.info.pop(PING, False))
            if self.held:
                assert self.group is not None
                self.group.finish()
            else:
                connection.commit()
        except BaseException:
            self.close(commit=False)
            raise
        self.close(commit=True)
        for take, items in zip(takes, found, strict=True):
            take.taken.items = items
        return pinged

    def close(self, *, commit: bool) -> None:
        connection = self.connection
        if connection is None:
            return
        self.connection = None
        if self.held:
            assert self.group is not None
            self.held = False
            self.group.release(rollback=not commit)
            return
        try:
            if not commit and connection.in_transaction():
                connection.rollback()
        finally:
            connection.info.pop(PING, None)
            connection.close()


class Carried:
    """A kept write that a take at commit can carry in its own statement (see
    :meth:`Database.take`); called with a connection, it runs alone."""

    __slots__ = ()

    def __call__(self, connection: Connection) -> Any:
        raise NotImplementedError


class Taken:
    """What a :meth:`Database.take` took: empty until its transaction has committed."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []


class _Take:
    __slots__ = ("at", "carry", "count", "key", "lost", "take", "taken")

    def __init__(
        self,
        key: Hashable,
        count: int,
        take: Callable[[Connection, int], list[Any]],
        taken: Taken,
        at: Any = None,
        carry: Callable[[Connection, int, Carried], list[Any]] | None = None,
        lost: Callable[[], None] | None = None,
    ) -> None:
        self.key = key
        self.count = count
        self.take = take
        self.taken = taken
        self.at = at
        self.carry = carry
        self.lost = lost


class _Entry:
    """One unit of work's part of a group commit."""

    __slots__ = ("kept", "pinged", "state", "takes")

    def __init__(self, kept: list[Callable[[Connection], Any]], takes: list[_Take]) -> None:
        self.kept = kept
        self.takes = takes
        self.state: bool | None = None
        """``True`` once committed with the group, ``False`` if the group's transaction failed
        (the unit then commits on its own)."""
        self.pinged = False


class _Group:
    """Group commit (SQLite): units of work that several threads commit at about the same time
    are written in one transaction, one write lock and one commit instead of one each.

    The first thread to commit leads: it takes every unit waiting, runs their kept writes, then
    their takes (the takes of one key as one), and commits; the others wait for it, and whoever
    arrived meanwhile goes in the next one. Each unit still learns that its writes committed before
    its thread goes on. If the group's transaction fails, nothing of it is committed and every
    unit in it commits again on its own, as it would have without the group.

    A thread can say that it will commit a unit in a moment (:meth:`Database.expect`: a worker
    process has just answered, and the thread is recording the run's end). A leader first waits,
    for up to ``LINGER`` seconds, for the units of the threads that said so within the last
    ``COMING_FOR`` seconds: runs that end at about the same time then commit together instead of
    one after the other, each paying a transaction of its own. A leader never waits for a thread
    whose run is still running, so a lone unit commits at once.
    """

    LARGEST = 64
    LINGER = 0.002
    COMING_FOR = 0.005

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pid = os.getpid()
        self._ready = threading.Condition(threading.Lock())
        self._arrived = threading.Condition(self._ready._lock)  # type: ignore[attr-defined]
        self._waiting: list[_Entry] = []
        self._leading = False
        self._coming: dict[int, float] = {}
        """The threads that said they will commit a unit in a moment, and when they said it."""
        self._lingering = False
        self._holder: int | None = None
        """The thread leading, while it leads."""
        self._connection: Connection | None = None
        """The leaders' connection, kept between groups (only a leader uses it)."""
        self._raw: Any = None
        """The driver's connection under it (read once: each statement of a run would otherwise
        walk SQLAlchemy's properties down to it)."""

    def expect(self) -> None:
        """This thread will commit a unit in a moment: a leader may wait for it."""
        if os.getpid() != self._pid:
            self._after_fork()
        with self._ready:
            self._coming[threading.get_ident()] = time.monotonic()

    def commit(self, entry: _Entry) -> bool:
        """Commit *entry* with whatever else is waiting; ``False`` if that failed."""
        if os.getpid() != self._pid:
            self._after_fork()
        me = threading.get_ident()
        with self._ready:
            if self._holder == me:
                return False
            self._waiting.append(entry)
            if self._coming.pop(me, None) is not None and self._lingering:
                self._last_awaited()
            while entry.state is None and self._leading:
                self._ready.wait()
            if entry.state is not None:
                return entry.state
            self._leading = True
            self._holder = me
            self._linger()
            batch = self._waiting[: self.LARGEST]
            del self._waiting[: self.LARGEST]
        try:
            self._write(batch)
        finally:
            self._let_go()
        return bool(entry.state)

    def hold(self) -> Connection | None:
        """Lead with no group: this thread's own transaction runs on the leaders' connection,
        begun here, until :meth:`release`; the units committing meanwhile wait for it, as they
        would for SQLite's write lock. ``None`` if this thread leads already (it then takes a
        connection of its own, as without the group)."""
        if os.getpid() != self._pid:
            self._after_fork()
        me = threading.get_ident()
        with self._ready:
            if self._holder == me:
                return None
            if self._coming.pop(me, None) is not None and self._lingering:
                self._last_awaited()
            while self._leading:
                self._ready.wait()
            self._leading = True
            self._holder = me
        try:
            connection = self._kept()
            self._driver(connection, "BEGIN IMMEDIATE")
        except BaseException:
            self._drop()
            self._let_go()
            raise
        return connection

    def finish(self) -> None:
        """Commit the transaction :meth:`hold` began (the holder then calls :meth:`release`)."""
        assert self._connection is not None
        self._driver(self._connection, "COMMIT")

    def release(self, *, rollback: bool) -> None:
        """End what :meth:`hold` began (committed by the holder, or rolled back here) and let
        the next leader in. A connection that fails to roll back is let go."""
        connection = self._connection
        try:
            if connection is not None:
                connection.info.pop(PING, None)
                if connection.invalidated:
                    self._drop()
                elif rollback and self.driver_of(connection).in_transaction:
                    try:
                        self._driver(connection, "ROLLBACK")
                    except BaseException:
                        self._drop()
                        raise
        finally:
            self._let_go()

    def _let_go(self) -> None:
        with self._ready:
            self._leading = False
            self._holder = None
            self._ready.notify_all()

    def _last_awaited(self) -> None:
        """Wake the lingering leader once no other unit it waits for is still coming."""
        now = time.monotonic()
        if len(self._waiting) >= self.LARGEST or all(
            now - at > self.COMING_FOR for at in self._coming.values()
        ):
            self._arrived.notify()

    def _linger(self) -> None:
        """As the leader, wait a moment for the units of the threads that said they are coming
        (a unit that does not come within ``LINGER`` goes in a later group)."""
        now = time.monotonic()
        deadline = now + self.LINGER
        self._lingering = True
        try:
            while len(self._waiting) < self.LARGEST:
                for ident in [i for i, at in self._coming.items() if now - at > self.COMING_FOR]:
                    del self._coming[ident]
                left = deadline - now
                if not self._coming or left <= 0:
                    return
                self._arrived.wait(left)
                now = time.monotonic()
        finally:
            self._lingering = False

    def _write(self, batch: list[_Entry]) -> None:
        results: list[tuple[_Take, list[Any]]] = []
        try:
            connection = self._kept()
            self._driver(connection, "BEGIN IMMEDIATE")
            for entry in batch:
                for write in entry.kept:
                    write(connection)
            results = _take_together([t for entry in batch for t in entry.takes], connection)
            pinged = bool(connection.info.pop(PING, False))
            self._driver(connection, "COMMIT")
        except BaseException as exc:
            for entry in batch:
                entry.state = False
            self._drop()
            if not isinstance(exc, Exception):
                raise
            log.debug("a group commit failed; each of its units commits on its own", exc_info=True)
            return
        for take, items in results:
            take.taken.items = items
        for entry in batch:
            entry.pinged = pinged
            entry.state = True

    def _kept(self) -> Connection:
        """The leaders' connection. SQLAlchemy sees one transaction open on it for good (so that
        a statement never begins one of its own); each group's transaction is begun and ended on
        the driver, without SQLAlchemy's begin, commit and their events."""
        if self._connection is None:
            connection = self.db.writer.connect()
            connection.execution_options(**{KEPT_OPTION: True})
            connection.begin()
            self._connection = connection
            self._raw = connection.connection.driver_connection
        return self._connection

    def driver_of(self, connection: Connection) -> Any:
        """The driver's connection under *connection* (the leaders' is read once, when made)."""
        if connection is self._connection:
            return self._raw
        return connection.connection.driver_connection

    def _driver(self, connection: Connection, sql: str) -> None:
        """Run *sql* (``BEGIN IMMEDIATE``, ``COMMIT``, ``ROLLBACK``) on the driver; its errors
        are raised as SQLAlchemy's, as a statement's would be."""
        dialect = self.db.engine.dialect
        dbapi = dialect.loaded_dbapi
        try:
            self.driver_of(connection).execute(sql)
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=dialect) from exc

    def _drop(self) -> None:
        """Let the leaders' connection go after a failure: the next group takes a fresh one.
        Closing it rolls back what it had begun."""
        connection, self._connection = self._connection, None
        self._raw = None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("closing a failed group connection failed", exc_info=True)

    def close(self) -> None:
        """Give the leaders' connection back to the pool."""
        with self._ready:
            if not self._leading:
                self._drop()

    def _after_fork(self) -> None:
        """In a forked child: the parent's leader, waiters and connection are not this process's
        (the connection is left alone, never closed here)."""
        self._pid = os.getpid()
        self._ready = threading.Condition(threading.Lock())
        self._arrived = threading.Condition(self._ready._lock)  # type: ignore[attr-defined]
        self._waiting = []
        self._leading = False
        self._coming = {}
        self._lingering = False
        self._holder = None
        self._connection = None
        self._raw = None


def _aborted(connection: Connection) -> bool:
    """Whether *connection*'s transaction failed and can only roll back (PostgreSQL)."""
    info = getattr(connection.connection.driver_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    return getattr(status, "name", None) == "INERROR"


def _take_together(takes: list[_Take], connection: Connection) -> list[tuple[_Take, list[Any]]]:
    """Run *takes*, those of one key as one, and deal out what each took (in order)."""
    by_key: dict[Hashable, list[_Take]] = {}
    for take in takes:
        by_key.setdefault(take.key, []).append(take)
    dealt: list[tuple[_Take, list[Any]]] = []
    for same in by_key.values():
        latest = same[0]
        for take in same:
            if take.at is not None and (latest.at is None or take.at > latest.at):
                latest = take
        items = latest.take(connection, sum(take.count for take in same))
        start = 0
        for take in same:
            dealt.append((take, items[start : start + take.count]))
            start += take.count
    return dealt


def upsert_for(dialect: str) -> Any:
    """The dialect's ``INSERT ... ON CONFLICT`` construct."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def as_utc(value: Any) -> datetime | None:
    """An aggregate's datetime as an aware UTC value (SQLite may hand back naive ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    moment: datetime = value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
