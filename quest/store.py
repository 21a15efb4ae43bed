"""The database: the JobLog, slot claims and overlap leases, on SQLite or PostgreSQL.

Only this module writes SQL. Every write is a short transaction; on SQLite every transaction
starts with ``BEGIN IMMEDIATE`` so that concurrent processes queue on the lock instead of failing.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker

from .config import Settings
from .enums import RunStatus
from .errors import ConfigError, DatabaseUnavailable
from .models import (
    job_log_table,
    leases,
    pending_secrets,
    script_state,
    slots,
)
from .models import (
    metadata as quest_metadata,
)

log = logging.getLogger("quest.store")


WRITE_OPTION = "quest_write"
CLAIM_PAGES = 8


def make_engine(url: str) -> Engine:
    """An engine for *url*; SQLite gets WAL and a busy timeout.

    On SQLite a connection with the ``quest_write`` execution option begins ``IMMEDIATE``, taking
    the write lock up front so that concurrent writers queue instead of failing; plain reads begin
    deferred and never block anyone.
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
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            immediate = connection.get_execution_options().get(WRITE_OPTION)
            driver = connection.connection.driver_connection
            driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except Exception as exc:
        raise ConfigError(f"database URL {url!r} is not usable: {exc}") from None


_FALLBACK = MetaData()


@functools.cache
def _fallback_job_log() -> Table:
    return job_log_table(_FALLBACK)


def load_models(settings: Settings) -> tuple[Table, list[MetaData]]:
    """The JobLog table and every metadata to create: the app's models module, then quest's."""
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
        job_log = _fallback_job_log()
    if job_log.metadata not in metadatas:
        metadatas.append(job_log.metadata)
    metadatas.append(quest_metadata)
    return job_log, metadatas


class Store:
    """quest's view of the database."""

    def __init__(
        self,
        engine: Engine,
        job_log: Table | None = None,
        metadatas: Sequence[MetaData] = (),
        *,
        models: str | None = None,
    ) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**{WRITE_OPTION: True})
        self.models = models
        self.runs: Table = job_log if job_log is not None else _fallback_job_log()
        self.metadatas = list(metadatas) or [self.runs.metadata, quest_metadata]
        self.sessions = sessionmaker(bind=self.writer, expire_on_commit=False)
        self.retry_for = 300.0
        self._schema_ready = False
        self._local = threading.local()
        self._prepared: dict[tuple[int, frozenset[str]], _Prepared] = {}
        runs = self.runs
        # An application's JobLog may add columns with Python-side defaults or onupdate; those
        # rows go through SQLAlchemy's full execution, which runs them.
        self._plain_runs = all(
            (c.default is None or c.default.is_scalar) and c.onupdate is None for c in runs.c
        )
        upsert = _upsert_for(engine.dialect.name)
        self._insert_run = insert(runs)
        self._update_run = update(runs).where(runs.c.id == bindparam("_run_id"))
        # A correlated subquery in RETURNING (SQLite 3.35+, PostgreSQL) reads the pause flag in
        # the claim's own statement.
        paused: Any = literal_column(
            f"(SELECT {script_state.name}.paused FROM {script_state.name} "
            f"WHERE {script_state.name}.name = {slots.name}.name)"
        )
        self._claim = (
            upsert(slots)
            .on_conflict_do_nothing(index_elements=["name", "scheduled_for"])
            .returning(slots.c.name, paused)
        )
        taken = upsert(leases)
        self._take_lease = taken.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "run_id": taken.excluded.run_id,
                "owner": taken.excluded.owner,
                "acquired_at": taken.excluded.acquired_at,
                "expires_at": taken.excluded.expires_at,
            },
            where=leases.c.expires_at <= bindparam("_now"),
        ).returning(leases.c.run_id)
        self._release_lease = delete(leases).where(
            leases.c.name == bindparam("_name"), leases.c.run_id == bindparam("_run_id")
        )
        self._renew_lease = (
            update(leases)
            .where(leases.c.name == bindparam("_name"), leases.c.run_id == bindparam("_run_id"))
            .values(expires_at=bindparam("_expires"))
        )
        self._due = (
            select(runs.c.id)
            .where(runs.c.status == RunStatus.queued, runs.c.run_after <= bindparam("_now"))
            .limit(1)
        )
        self._is_paused = select(script_state.c.paused).where(
            script_state.c.name == bindparam("_name")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        job_log, metadatas = load_models(settings)
        return cls(make_engine(settings.database_url), job_log, metadatas, models=settings.models)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ensure_schema(self) -> None:
        """Create or migrate the tables, once per process."""
        if self._schema_ready:
            return
        try:
            from .migrate import upgrade

            upgrade(self, self.models)
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database {self.engine.url.render_as_string()}: {exc.orig}"
            ) from None
        self._schema_ready = True

    def check(self) -> None:
        """Raise :class:`DatabaseUnavailable` if the database cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database {self.engine.url.render_as_string()}: {exc.orig}"
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- units of work -------------------------------------------------------------------------

    @contextmanager
    def unit(
        self, *, durable: bool = False, about: Mapping[str, Any] | None = None
    ) -> Iterator[None]:
        """Group this thread's writes into one transaction, committed when the block ends.

        Writes that return something (a claim, a lease) run at once on the unit's transaction;
        the others (JobLog rows, releases) are kept and run just before the commit. A *durable*
        unit that cannot commit because the database is unreachable replays its kept writes one by
        one with backoff, for up to ``retry_for`` seconds, so that no outcome is lost. A unit
        opened inside another joins it.
        """
        if getattr(self._local, "unit", None) is not None:
            yield
            return
        unit = _Unit(durable, dict(about or {}))
        self._local.unit = unit
        try:
            yield
        except BaseException:
            self._local.unit = None
            unit.close(commit=False)
            raise
        self._local.unit = None
        self._commit(unit)

    def flush(self) -> None:
        """Commit what this thread's unit of work has written so far; the unit stays open."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is not None:
            self._commit(unit)

    def _commit(self, unit: _Unit) -> None:
        kept, unit.kept = unit.kept, []
        try:
            unit.commit(self.writer, kept)
        except DBAPIError as exc:
            if not unit.durable or not kept:
                raise
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

    def _write(self, write: Callable[[Connection], Any], *, now: bool = False) -> Any:
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is None:
            with self.writer.begin() as connection:
                return write(connection)
        if now:
            return write(unit.connection_for(self.writer))
        unit.kept.append(write)
        return None

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

    def _run(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> Any:
        """Execute a hot statement through its :class:`_Prepared` form; returns the cursor."""
        key = (id(statement), frozenset(values))
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = _Prepared(statement, self.engine.dialect, values)
        parameters = prepared.parameters(values)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            cursor.execute(prepared.sql, parameters)
        except dbapi.Error as exc:
            cursor.close()
            raise DBAPIError.instance(
                prepared.sql, parameters, exc, dbapi.Error, dialect=self.engine.dialect
            ) from exc
        return cursor

    def _first(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> Any:
        cursor = self._run(connection, statement, values)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()

    def _do(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> int:
        cursor = self._run(connection, statement, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    # -- runs ---------------------------------------------------------------------------------

    def insert_run(self, values: dict[str, Any]) -> None:
        if self._plain_runs:
            self._write(lambda connection: self._do(connection, self._insert_run, values))
        else:
            self._write(lambda connection: connection.execute(self._insert_run, values))

    def update_run(self, run_id: str, values: dict[str, Any]) -> None:
        params = {**values, "_run_id": run_id}
        if self._plain_runs:
            self._write(lambda connection: self._do(connection, self._update_run, params))
        else:
            self._write(lambda connection: connection.execute(self._update_run, params))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(self.runs).where(self.runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def history(
        self,
        name: str | None = None,
        *,
        statuses: Iterable[RunStatus] = (),
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[dict[str, Any]]:
        """Runs, newest first."""
        runs = self.runs
        query = select(runs)
        if name is not None:
            query = query.where(runs.c.name == name)
        wanted = list(statuses)
        if wanted:
            query = query.where(runs.c.status.in_(wanted))
        if since is not None:
            query = query.where(runs.c.created_at >= since)
        query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def last_runs(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The latest finished run of each script in *names*."""
        runs = self.runs
        names = list(names)
        if not names:
            return {}
        finished = [s for s in RunStatus if s.finished]
        latest = (
            select(runs.c.name, func.max(runs.c.created_at).label("created_at"))
            .where(runs.c.status.in_(finished), runs.c.name.in_(names))
            .group_by(runs.c.name)
            .subquery()
        )
        query = (
            select(runs)
            .join(
                latest, and_(runs.c.name == latest.c.name, runs.c.created_at == latest.c.created_at)
            )
            .where(runs.c.status.in_(finished))
        )
        with self.engine.connect() as connection:
            return {row.name: dict(row._mapping) for row in connection.execute(query)}

    def count_runs(self, name: str | None = None, status: RunStatus | None = None) -> int:
        query = select(func.count()).select_from(self.runs)
        if name is not None:
            query = query.where(self.runs.c.name == name)
        if status is not None:
            query = query.where(self.runs.c.status == status)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # -- the queue ---------------------------------------------------------------------------

    def enqueue_run(self, values: dict[str, Any], secrets: dict[str, Any] | None = None) -> None:
        """Insert a queued row; sensitive inputs go to a side table, never the JobLog."""
        self._write(lambda connection: self._enqueue(connection, values, secrets))

    def _enqueue(
        self, connection: Connection, values: dict[str, Any], secrets: dict[str, Any] | None
    ) -> None:
        connection.execute(self._insert_run, values)
        if secrets:
            table = pending_secrets
            root = values["root_id"]
            exists = connection.execute(
                select(table.c.root_id).where(table.c.root_id == root)
            ).first()
            if not exists:
                connection.execute(
                    insert(table),
                    {"root_id": root, "inputs": secrets, "created_at": values["created_at"]},
                )

    def secrets_for(self, root_id: str | None) -> dict[str, Any]:
        if root_id is None:
            return {}
        table = pending_secrets
        with self.engine.connect() as connection:
            value = connection.execute(
                select(table.c.inputs).where(table.c.root_id == root_id)
            ).scalar_one_or_none()
        return dict(value or {})

    def forget_secrets(self, root_id: str | None) -> None:
        if root_id is None:
            return
        table = pending_secrets
        statement = delete(table).where(table.c.root_id == root_id)
        self._write(lambda connection: connection.execute(statement))

    def prune_secrets(self) -> int:
        """Forget the secrets of chains that have no queued or running run left."""
        table = pending_secrets
        runs = self.runs
        alive = (
            select(runs.c.id)
            .where(
                runs.c.root_id == table.c.root_id,
                runs.c.status.in_([RunStatus.queued, RunStatus.running]),
            )
            .exists()
        )
        with self.writer.begin() as connection:
            return int(connection.execute(delete(table).where(~alive)).rowcount)

    def claim_queued(
        self,
        *,
        now: datetime,
        limit: int,
        owner_host: str,
        owner_pid: int,
        limits: Mapping[str, Limits] | None = None,
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Take up to *limit* due queued runs, honouring per-script and per-key limits.

        On PostgreSQL rows are locked with ``FOR UPDATE SKIP LOCKED`` so concurrent serves never
        take the same run; on SQLite the immediate transaction serialises claimers.
        """
        if limit <= 0:
            return []
        runs = self.runs
        limits = limits or {}
        page = max(limit * 4, 16)
        claimed: list[dict[str, Any]] = []
        blocked: set[tuple[str, str | None]] = set()
        with self.writer.begin() as connection:
            for offset in range(0, page * CLAIM_PAGES, page):
                query = (
                    select(runs)
                    .where(runs.c.status == RunStatus.queued, runs.c.run_after <= now)
                    .order_by(runs.c.run_after, runs.c.created_at)
                    .offset(offset)
                    .limit(page)
                )
                if run_id is not None:
                    query = select(runs).where(
                        runs.c.id == run_id, runs.c.status == RunStatus.queued
                    )
                if self.dialect == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                candidates = [dict(row._mapping) for row in connection.execute(query)]
                self._take(
                    connection,
                    candidates,
                    claimed,
                    blocked,
                    limit,
                    limits,
                    now,
                    owner_host,
                    owner_pid,
                )
                if len(claimed) >= limit or len(candidates) < page or run_id is not None:
                    break
        return claimed

    def _take(
        self,
        connection: Connection,
        candidates: list[dict[str, Any]],
        claimed: list[dict[str, Any]],
        blocked: set[tuple[str, str | None]],
        limit: int,
        limits: Mapping[str, Limits],
        now: datetime,
        owner_host: str,
        owner_pid: int,
    ) -> None:
        """Claim from *candidates*; a script or key found at its limit is passed over after."""
        runs = self.runs
        for row in candidates:
            if len(claimed) >= limit:
                break
            rule = limits.get(row["name"])
            if rule is not None:
                scope = (row["name"], row["key"] if _per_key(rule) else None)
                if scope in blocked:
                    continue
                if not self._within(connection, rule, row, now):
                    blocked.add(scope)
                    continue
            taken = connection.execute(
                update(runs)
                .where(runs.c.id == row["id"], runs.c.status == RunStatus.queued)
                .values(
                    status=RunStatus.running,
                    started_at=now,
                    heartbeat_at=now,
                    owner_host=owner_host,
                    owner_pid=owner_pid,
                )
            ).rowcount
            if taken:
                claimed.append(row)

    def _within(
        self,
        connection: Any,
        rule: Limits,
        row: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Whether *row* may start now. Rows claimed earlier in this transaction are already
        ``running`` with ``started_at`` set, so the counts below include them."""
        runs = self.runs
        if self.dialect == "postgresql":
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext(%(name)s))", {"name": "quest:" + row["name"]}
            )
        for scope in _scopes(rule, row):
            name, key = scope
            same = [runs.c.name == name]
            if key is not None:
                same.append(runs.c.key == key)
            per_key = key is not None
            if rule.concurrency is not None and rule.concurrency_per_key == per_key:
                running = connection.execute(
                    select(func.count())
                    .select_from(runs)
                    .where(*same, runs.c.status == RunStatus.running)
                ).scalar_one()
                if running >= rule.concurrency:
                    return False
            if rule.rate_max is not None and rule.rate_per_key == per_key:
                since = now - rule.rate_per
                started = connection.execute(
                    select(func.count())
                    .select_from(runs)
                    .where(
                        *same,
                        runs.c.started_at > since,
                        runs.c.started_at.is_not(None),
                        runs.c.status != RunStatus.skipped,
                    )
                ).scalar_one()
                if started >= rule.rate_max:
                    return False
        return True

    def has_due(self, now: datetime) -> bool:
        """Whether a queued run is due: a plain read, so an idle serve takes no write lock."""
        with self.engine.connect() as connection:
            return self._first(connection, self._due, {"_now": now}) is not None

    def requeue(self, run_id: str, *, run_after: datetime) -> None:
        """Give a claimed run back to the queue (its script was busy)."""
        self.update_run(
            run_id,
            {
                "status": RunStatus.queued,
                "run_after": run_after,
                "started_at": None,
                "owner_host": None,
                "owner_pid": None,
            },
        )

    def abandon_stale(self, *, now: datetime, ttl: timedelta) -> list[dict[str, Any]]:
        """Mark ``abandoned`` every running row whose owner stopped heartbeating; return them."""
        runs = self.runs
        cutoff = now - ttl
        with self.engine.connect() as connection:
            stale = [
                dict(row._mapping)
                for row in connection.execute(
                    select(runs).where(
                        runs.c.status == RunStatus.running, runs.c.heartbeat_at < cutoff
                    )
                )
            ]
        abandoned = []
        for row in stale:
            with self.writer.begin() as connection:
                taken = connection.execute(
                    update(runs)
                    .where(
                        runs.c.id == row["id"],
                        runs.c.status == RunStatus.running,
                        runs.c.heartbeat_at < cutoff,
                    )
                    .values(
                        status=RunStatus.abandoned,
                        finished_at=now,
                        error=(
                            f"Abandoned: owner {row['owner_host']}:{row['owner_pid']} stopped "
                            f"heartbeating (last {row['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC)"
                        ),
                    )
                ).rowcount
            if taken:
                abandoned.append(row)
        return abandoned

    def prune_runs(
        self,
        name: str,
        statuses: Sequence[RunStatus],
        *,
        older_than: datetime | None,
        keep: int | None,
    ) -> int:
        """Delete finished runs of *name* with *statuses*: older than a date, beyond a count."""
        runs = self.runs
        deleted = 0
        where = [runs.c.name == name, runs.c.status.in_(list(statuses))]
        with self.writer.begin() as connection:
            if older_than is not None:
                deleted += connection.execute(
                    delete(runs).where(*where, runs.c.created_at < older_than)
                ).rowcount
            if keep is not None:
                newest_beyond = (
                    select(runs.c.created_at)
                    .where(*where)
                    .order_by(runs.c.created_at.desc())
                    .offset(keep)
                    .limit(1)
                    .scalar_subquery()
                )
                deleted += connection.execute(
                    delete(runs).where(*where, runs.c.created_at <= newest_beyond)
                ).rowcount
        return int(deleted)

    def names_in_log(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(self.runs.c.name).distinct()).scalars())

    # -- slots --------------------------------------------------------------------------------

    def claim_slot(
        self, name: str, scheduled_for: datetime, *, run_id: str | None, owner: str, now: datetime
    ) -> bool:
        """Take the slot (name, scheduled_for); ``False`` if another process already has it."""
        return (
            self.claim_slot_paused(name, scheduled_for, run_id=run_id, owner=owner, now=now)
            is not None
        )

    def claim_slot_paused(
        self, name: str, scheduled_for: datetime, *, run_id: str | None, owner: str, now: datetime
    ) -> bool | None:
        """Take the slot and say in the same statement whether the script is paused.

        ``None`` if another process already has the slot, else whether *name* is paused.
        """
        values = {
            "name": name,
            "scheduled_for": scheduled_for,
            "run_id": run_id,
            "owner": owner,
            "claimed_at": now,
        }
        row = self._write(lambda c: self._first(c, self._claim, values), now=True)
        return None if row is None else bool(row[1])

    def last_slots(self) -> dict[str, datetime]:
        """The latest claimed slot of every script."""
        query = select(slots.c.name, func.max(slots.c.scheduled_for)).group_by(slots.c.name)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return {name: moment for name, value in rows if (moment := _as_utc(value)) is not None}

    def prune_slots(self, before: datetime) -> int:
        """Forget claims older than *before* but the newest of each script."""
        table = slots
        newest = (
            select(table.c.name, func.max(table.c.scheduled_for).label("latest"))
            .group_by(table.c.name)
            .subquery()
        )
        with self.writer.begin() as connection:
            result = connection.execute(
                delete(table).where(
                    table.c.scheduled_for < before,
                    table.c.scheduled_for
                    < select(newest.c.latest)
                    .where(newest.c.name == table.c.name)
                    .scalar_subquery(),
                )
            )
            return int(result.rowcount)

    # -- leases -------------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, *, run_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> bool:
        """Take the overlap lease of *name*, or take over an expired one, in one statement."""
        values = {
            "name": name,
            "run_id": run_id,
            "owner": owner,
            "acquired_at": now,
            "expires_at": now + ttl,
            "_now": now,
        }
        return bool(self._write(lambda c: self._first(c, self._take_lease, values), now=True))

    def renew_lease(self, name: str, *, run_id: str, now: datetime, ttl: timedelta) -> bool:
        values = {"_name": name, "_run_id": run_id, "_expires": now + ttl}
        return bool(self._write(lambda c: c.execute(self._renew_lease, values).rowcount, now=True))

    def release_lease(self, name: str, *, run_id: str) -> None:
        values = {"_name": name, "_run_id": run_id}
        self._write(lambda connection: self._do(connection, self._release_lease, values))

    def lease(self, name: str) -> dict[str, Any] | None:
        table = leases
        with self.engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.name == name)).first()
        return dict(row._mapping) if row else None

    # -- pause --------------------------------------------------------------------------------

    def set_paused(self, name: str, paused: bool, *, now: datetime) -> None:
        table = script_state
        with self.writer.begin() as connection:
            changed = connection.execute(
                update(table).where(table.c.name == name).values(paused=paused, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(table), {"name": name, "paused": paused, "updated_at": now}
                )

    def is_paused(self, name: str) -> bool:
        """Whether *name* is paused, read in this thread's unit of work when one is open."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is not None:
            connection = unit.connection_for(self.writer)
            return bool(connection.execute(self._is_paused, {"_name": name}).scalar())
        with self.engine.connect() as connection:
            return bool(connection.execute(self._is_paused, {"_name": name}).scalar())

    def paused(self) -> set[str]:
        table = script_state
        with self.engine.connect() as connection:
            return set(
                connection.execute(select(table.c.name).where(table.c.paused.is_(True))).scalars()
            )


class _Prepared:
    """A statement compiled once for the driver, with SQLAlchemy's own bind processors.

    The hot writes of every run (the JobLog row, the slot claim, the lease) skip SQLAlchemy's
    per-execution work (cache keys, result set-up): the SQL string and each parameter's type
    processing are computed once, then the driver's cursor runs it inside the same transaction.
    """

    __slots__ = ("defaults", "names", "positional", "processors", "sql")

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
                self.processors[name] = processor
            column = table.c.get(name) if table is not None else None
            default = getattr(column, "default", None)
            if bind.value is not None and not bind.callable:
                self.defaults[name] = bind.value
            elif default is not None and default.is_scalar:
                self.defaults[name] = default.arg

    def parameters(self, values: Mapping[str, Any]) -> Any:
        processed = {}
        for name in self.names:
            value = values[name] if name in values else self.defaults.get(name)
            processor = self.processors.get(name)
            processed[name] = processor(value) if processor is not None else value
        if self.positional:
            return [processed[name] for name in self.names]
        return processed


class _Unit:
    """The open transaction of one thread's unit of work, and the writes kept for its end."""

    __slots__ = ("about", "connection", "durable", "kept")

    def __init__(self, durable: bool, about: dict[str, Any]) -> None:
        self.durable = durable
        self.about = about
        self.connection: Connection | None = None
        self.kept: list[Callable[[Connection], Any]] = []

    def connection_for(self, engine: Engine) -> Connection:
        if self.connection is None:
            self.connection = engine.connect()
            self.connection.begin()
        return self.connection

    def commit(self, engine: Engine, kept: list[Callable[[Connection], Any]]) -> None:
        if self.connection is None and not kept:
            return
        connection = self.connection_for(engine)
        try:
            for write in kept:
                write(connection)
            connection.commit()
        except BaseException:
            self.close(commit=False)
            raise
        self.close(commit=True)

    def close(self, *, commit: bool) -> None:
        if self.connection is None:
            return
        try:
            if not commit and self.connection.in_transaction():
                self.connection.rollback()
        finally:
            self.connection.close()
            self.connection = None


def _upsert_for(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _as_utc(value: Any) -> datetime | None:
    """An aggregate's datetime as an aware UTC value (SQLite may hand back naive ones)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    moment: datetime = value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Limits:
    """The concurrency and rate limits of one script's queued runs."""

    concurrency: int | None = None
    concurrency_per_key: bool = False
    rate_max: int | None = None
    rate_per: timedelta = timedelta(seconds=1)
    rate_per_key: bool = False


def _per_key(rule: Limits) -> bool:
    return rule.concurrency_per_key or rule.rate_per_key


def _scopes(rule: Limits | None, row: dict[str, Any]) -> list[tuple[str, str | None]]:
    if rule is None:
        return []
    scopes: list[tuple[str, str | None]] = []
    wants_key = rule.concurrency_per_key or rule.rate_per_key
    wants_script = (rule.concurrency is not None and not rule.concurrency_per_key) or (
        rule.rate_max is not None and not rule.rate_per_key
    )
    if wants_script:
        scopes.append((row["name"], None))
    if wants_key and row.get("key") is not None:
        scopes.append((row["name"], row["key"]))
    return scopes


__all__ = ["Limits", "Store", "load_models", "make_engine"]
