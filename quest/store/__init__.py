"""The database: the JobLog, the queue, slot claims, leases, pauses, secrets, nodes, cancels and
progress.

Only this package writes SQL, one module per table family, behind :class:`Store`, the facade the
rest of quest uses. Every write is a short transaction; on SQLite a writing transaction starts
with ``BEGIN IMMEDIATE`` so that concurrent processes queue on the lock instead of failing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table
from sqlalchemy.exc import OperationalError

from ..config import Settings
from ..enums import CancelOutcome, RunStatus
from ..errors import DatabaseUnavailable
from ..models import metadata as quest_metadata
from . import wake
from ._engine import (
    CHANNEL,
    Database,
    Taken,
    Unit,
    fallback_job_log,
    load_models,
    make_engine,
)
from .actions import Actions
from .cancels import CancelResult, Cancels
from .gauges import GaugeReader, Gauges
from .leases import Leases
from .logs import Logs
from .nodes import Nodes, node_state
from .outcomes import Outcome, Outcomes
from .pauses import Pauses
from .progress import Progress
from .queue import Limits, Queue
from .runs import Runs
from .secrets import Secrets
from .sessions import Sessions
from .slots import Slots
from .wake import Waiter


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
        self.models = models
        self.runs: Table = job_log if job_log is not None else fallback_job_log(engine.dialect.name)
        self.metadatas = list(metadatas) or [self.runs.metadata, quest_metadata]
        self._folder = None
        if engine.dialect.name == "sqlite" and wake.HAS_UNIX_SOCKETS:
            self._folder = wake.socket_folder(_sqlite_key(engine))
        self.db = Database(engine, ping=self._ring if self._folder is not None else None)
        self.writer = self.db.writer
        self.sessions = Sessions(self.writer)
        self._schema_ready = False
        self._runs = Runs(self.db, self.runs)
        self._secrets = Secrets(self.db, self.runs)
        self._slots = Slots(self.db)
        self._leases = Leases(self.db)
        self._pauses = Pauses(self.db)
        self._queue = Queue(self.db, self._runs, self._secrets, self._leases)
        self._nodes = Nodes(self.db, self.runs)
        self._cancels = Cancels(self.db, self.runs, self._secrets)
        self._logs = Logs(self.db, self.runs)
        self._progress = Progress(self.db, self.runs)
        self._gauges = GaugeReader(self.db, self.runs)
        self._actions = Actions(self.db, self.runs, self._secrets)
        self._outcomes = Outcomes(self.db)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        engine = make_engine(settings.database_url)
        job_log, metadatas = load_models(settings, engine.dialect.name)
        return cls(engine, job_log, metadatas, models=settings.models)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def retry_for(self) -> float:
        """How long a durable unit of work retries its writes while the database is away."""
        return self.db.retry_for

    @retry_for.setter
    def retry_for(self, seconds: float) -> None:
        self.db.retry_for = seconds

    def ensure_schema(self) -> None:
        """Create or migrate the tables, once per process."""
        if self._schema_ready:
            return
        from ..migrate import upgrade

        try:
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
        if self.db.group is not None:
            self.db.group.close()
        self.engine.dispose()

    # -- units of work -------------------------------------------------------------------------

    def unit(
        self, *, durable: bool = False, about: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[Unit | None]:
        """Group this thread's writes into one transaction (see :meth:`Database.unit`)."""
        return self.db.unit(durable=durable, about=about)

    def flush(self) -> None:
        """Commit what this thread's unit of work has written so far; the unit stays open."""
        self.db.flush()

    # -- wake-ups ------------------------------------------------------------------------------

    def waiter(self) -> Waiter:
        """A :class:`~quest.store.wake.Waiter` woken by enqueues and cancel requests anywhere."""
        if self.dialect == "postgresql":
            url = self.engine.url.set(drivername="postgresql")
            return wake.Listener(url.render_as_string(hide_password=False), CHANNEL)
        if self._folder is not None:
            return wake.SocketWaiter(self._folder)
        return wake.VersionPoller(self.engine.url.database or ":memory:")

    def _ring(self) -> None:
        if self._folder is not None:
            wake.ring_folder(self._folder)

    # -- runs ----------------------------------------------------------------------------------

    def insert_run(self, values: dict[str, Any]) -> None:
        self._runs.insert(values)

    def finish_run(self, run_id: str, values: dict[str, Any]) -> None:
        """Record the end of a run still ``running`` (never over another serve's verdict).

        In a unit of work on PostgreSQL, the claim of the worker's next run at the unit's commit
        carries the end in its own statement (see :class:`~quest.store.queue.End`)."""
        if self.db.current() is not None and self._queue.carries_ends:
            self._queue.finish(run_id, values)
        else:
            self._runs.finish(run_id, values)

    def update_run(self, run_id: str, values: dict[str, Any]) -> None:
        self._runs.update(run_id, values)

    def beat_run(self, run_id: str, now: datetime) -> bool:
        """Renew a running run's heartbeat; ``False`` if it is no longer ``running``."""
        return self._runs.beat(run_id, now)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._runs.get(run_id)

    def run_ids_starting(self, prefix: str, *, limit: int = 2) -> list[str]:
        """Run ids beginning with *prefix* (``quest history`` shows the first 8 characters)."""
        return self._runs.ids_starting(prefix, limit=limit)

    def history(
        self,
        name: str | None = None,
        *,
        statuses: Iterable[RunStatus] = (),
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[dict[str, Any]]:
        """Runs, newest first."""
        return self._runs.history(name, statuses=statuses, since=since, limit=limit)

    def last_runs(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The latest finished run of each script in *names*."""
        return self._runs.last(names)

    def outcomes(self, statuses: Iterable[RunStatus] = ()) -> dict[str, Outcome]:
        """Each script's latest finished run as the database keeps it (every script that ever
        finished one), or only those that ended in one of *statuses*."""
        return self._outcomes.read(statuses)

    def unsucceeded_since(self, cuts: Mapping[str, datetime]) -> dict[str, datetime | None]:
        """Of the scripts in *cuts* (name: instant) that finished a run, those whose latest
        success was created before their instant, or that never succeeded: name, that
        success's created_at or ``None`` (as :meth:`outcomes` keeps it)."""
        return self._outcomes.unsucceeded_since(cuts)

    def rebuild_outcomes(self) -> int:
        """Fill :meth:`outcomes` again from the JobLog, as the migration that made it did: after
        rows were loaded with the JobLog's triggers off, or a restore. The number of scripts."""
        return self._outcomes.rebuild(self.runs.name)

    @property
    def outcome_lag(self) -> timedelta:
        """How far behind the JobLog the instants of :meth:`outcomes` may be on this database."""
        return self._outcomes.lag

    def count_runs(self, name: str | None = None, status: RunStatus | None = None) -> int:
        return self._runs.count(name, status)

    def names_in_log(self) -> list[str]:
        return self._runs.names()

    def prune_runs(
        self,
        name: str,
        statuses: Sequence[RunStatus],
        *,
        older_than: datetime | None,
        keep: int | None,
    ) -> int:
        """Delete finished runs of *name* with *statuses*: older than a date, beyond a count.

        Their log lines go in the same transaction."""
        return self._runs.prune(name, statuses, older_than=older_than, keep=keep)

    def abandon_stale(self, *, now: datetime, ttl: timedelta) -> list[dict[str, Any]]:
        """End every running row whose owner stopped heartbeating: ``abandoned``, or
        ``cancelled`` when a cancel request was pending; each row carries its new status."""
        return self._runs.abandon_stale(now=now, ttl=ttl)

    # -- the queue -----------------------------------------------------------------------------

    def enqueue_run(self, values: dict[str, Any], secrets: dict[str, Any] | None = None) -> None:
        """Insert a queued row and wake every serve; sensitive inputs go to a side table."""
        self._queue.enqueue(values, secrets)

    def claim_queued(
        self,
        *,
        now: datetime,
        limit: int,
        owner_host: str,
        owner_pid: int,
        limits: Mapping[str, Limits] | None = None,
        leases: Mapping[str, timedelta] | None = None,
        run_id: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Take and start up to *limit* due queued runs; the rows come back ``running``.

        *limits* (script name → :class:`Limits`) bound each script's runs; *leases* (script name
        → lease TTL, for scripts declaring ``without_overlapping``) make a retry of a scheduled
        run take the script's overlap lease in the claim, owned by *owner* (default
        ``host:pid``), or stay queued. See :mod:`quest.store.queue`.
        """
        return self._queue.claim(
            now=now,
            limit=limit,
            owner_host=owner_host,
            owner_pid=owner_pid,
            limits=limits,
            leases=leases,
            run_id=run_id,
            owner=owner,
        )

    def claim_queued_at_commit(
        self,
        *,
        now: datetime,
        limit: int,
        owner_host: str,
        owner_pid: int,
        limits: Mapping[str, Limits] | None = None,
        leases: Mapping[str, timedelta] | None = None,
        owner: str | None = None,
    ) -> Taken:
        """:meth:`claim_queued`, run as this thread's unit of work commits (at once outside
        one); the rows are in the :class:`Taken` after the commit. Claims of one owner committed
        together (a group commit, SQLite) are one statement."""
        return self._queue.claim_at_commit(
            now=now,
            limit=limit,
            owner_host=owner_host,
            owner_pid=owner_pid,
            limits=limits,
            leases=leases,
            owner=owner,
        )

    def next_queued(self) -> datetime | None:
        """When the earliest queued run comes due (``None``: nothing is queued)."""
        return self._runs.next_queued()

    def requeue(self, run_id: str, *, run_after: datetime) -> None:
        """Give a claimed run back to the queue (claims never need it any more)."""
        self._queue.requeue(run_id, run_after=run_after)

    # -- secrets -------------------------------------------------------------------------------

    def secrets_for(self, root_id: str | None) -> dict[str, Any]:
        return self._secrets.get(root_id)

    def forget_secrets(self, root_id: str | None) -> None:
        self._secrets.forget(root_id)

    def prune_secrets(self) -> int:
        """Forget the secrets of chains that have no queued or running run left."""
        return self._secrets.prune()

    # -- slots ---------------------------------------------------------------------------------

    def claim_slot(
        self, name: str, scheduled_for: datetime, *, run_id: str | None, owner: str, now: datetime
    ) -> bool:
        """Take the slot (name, scheduled_for); ``False`` if another process already has it."""
        claimed = self._slots.claim(name, scheduled_for, run_id=run_id, owner=owner, now=now)
        return claimed is not None

    def claim_slot_paused(
        self, name: str, scheduled_for: datetime, *, run_id: str | None, owner: str, now: datetime
    ) -> bool | None:
        """Take the slot and say in the same statement whether the script is paused.

        ``None`` if another process already has the slot, else whether *name* is paused.
        """
        return self._slots.claim(name, scheduled_for, run_id=run_id, owner=owner, now=now)

    def last_slots(self) -> dict[str, datetime]:
        """The latest claimed slot of every script."""
        return self._slots.latest()

    def prune_slots(self, before: datetime) -> int:
        """Forget claims older than *before* but the newest of each script."""
        return self._slots.prune(before)

    # -- leases --------------------------------------------------------------------------------

    def acquire_lease(
        self, name: str, *, run_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> bool:
        """Take the overlap lease of *name*: free, expired, or already held by *run_id*."""
        return self._leases.acquire(name, run_id=run_id, owner=owner, now=now, ttl=ttl)

    def renew_lease(self, name: str, *, run_id: str, now: datetime, ttl: timedelta) -> bool:
        return self._leases.renew(name, run_id=run_id, now=now, ttl=ttl)

    def release_lease(self, name: str, *, run_id: str) -> None:
        self._leases.release(name, run_id=run_id)

    def lease(self, name: str) -> dict[str, Any] | None:
        return self._leases.get(name)

    # -- pauses --------------------------------------------------------------------------------

    def set_paused(self, name: str, paused: bool, *, now: datetime) -> None:
        self._pauses.set(name, paused, now=now)

    def is_paused(self, name: str) -> bool:
        """Whether *name* is paused, read in this thread's unit of work when one is open."""
        return self._pauses.is_paused(name)

    def paused(self) -> set[str]:
        return self._pauses.names()

    # -- nodes ---------------------------------------------------------------------------------

    def register_node(
        self,
        *,
        host: str,
        pid: int,
        version: str,
        now: datetime,
        concurrency: int,
        isolation: str,
        lease_ttl: float | None = None,
        node_id: str | None = None,
    ) -> str:
        """Record a serve process (*lease_ttl*: its ``QUEST_LEASE_TTL``); returns its node id."""
        return self._nodes.register(
            host=host,
            pid=pid,
            version=version,
            now=now,
            concurrency=concurrency,
            isolation=isolation,
            lease_ttl=lease_ttl,
            node_id=node_id,
        )

    def beat_node(self, node_id: str, now: datetime) -> None:
        self._nodes.beat(node_id, now)

    def stop_node(self, node_id: str, now: datetime) -> None:
        self._nodes.stop(node_id, now)

    def shortest_lease_ttl(self) -> float | None:
        """The shortest ``QUEST_LEASE_TTL`` among the serves not stopped (``None`` without one):
        a run that heartbeats at a third of it is never taken for abandoned by any of them."""
        return self._nodes.shortest_lease_ttl()

    def nodes(self) -> list[dict[str, Any]]:
        """Every node, newest first, each with ``runs``: its running runs (id, name,
        started_at). :func:`node_state` tells alive, lost and stopped apart."""
        return self._nodes.all()

    def prune_nodes(self, before: datetime) -> int:
        """Forget nodes stopped, or silent, since before *before*."""
        return self._nodes.prune(before)

    # -- metrics -------------------------------------------------------------------------------

    def gauges(self, names: Iterable[str]) -> Gauges:
        """Queued runs per script, the latest success of each of *names*, paused scripts and
        nodes: what a metrics scrape reads, in one read-only connection."""
        return self._gauges.read(names)

    # -- cancels -------------------------------------------------------------------------------

    def request_cancel(self, run_id: str, *, by: str, now: datetime) -> CancelResult:
        """Cancel a queued run at once, or ask the serve running it to stop it."""
        return self._cancels.request(run_id, by=by, now=now)

    def cancel_requests(self, run_ids: Iterable[str]) -> dict[str, str]:
        """Of *run_ids*, those with a pending cancel request → who asked."""
        return self._cancels.requested(run_ids)

    def prune_cancels(self) -> int:
        """Forget the cancel requests of runs that are no longer running."""
        return self._cancels.prune()

    def forget_cancel(self, run_id: str) -> None:
        """Drop the cancel request of *run_id* (its run has ended); joins a unit of work."""
        self._cancels.forget(run_id)

    # -- actions -------------------------------------------------------------------------------

    def record_action(
        self,
        *,
        who: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
        now: datetime,
    ) -> None:
        """Record that *who* did *action* to *target* (a script name or a run id)."""
        self._actions.record(who=who, action=action, target=target, detail=detail, now=now)

    def recent_actions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest recorded actions, newest first."""
        return self._actions.recent(limit)

    def discard_queued(self, run_id: str, *, by: str, now: datetime) -> bool:
        """End a queued run as ``discarded`` (its secrets forgotten); ``False`` if not queued."""
        return self._actions.discard(run_id, by=by, now=now)

    # -- log lines -----------------------------------------------------------------------------

    def append_logs(
        self,
        run_id: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        keep_from: int,
        marker: Mapping[str, Any] | None = None,
    ) -> None:
        """Add log lines of *run_id*, drop its lines numbered below *keep_from*, and set the
        marker line that says what was dropped (see :mod:`quest.runlog`)."""
        self._logs.append(run_id, rows, keep_from=keep_from, marker=marker)

    def run_logs(self, run_id: str, *, after: int | None = None) -> list[dict[str, Any]]:
        """The lines *run_id* logged, in order, the marker (seq 0) first; each a dict of seq,
        at, level, logger, message. Only those after seq *after* (and the marker) when given."""
        rows = self._logs.lines([run_id], after=after)
        for row in rows:
            del row["run_id"]
        return rows

    def logs_of(self, run_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The lines of each of *run_ids* (as :meth:`run_logs`); runs without lines have none."""
        found: dict[str, list[dict[str, Any]]] = {}
        for row in self._logs.lines(run_ids):
            found.setdefault(row.pop("run_id"), []).append(row)
        return found

    def log_tail(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The last line each of *run_ids* logged (the first line of its last message)."""
        return self._logs.tail(run_ids)

    def prune_logs(self) -> int:
        """Delete the log lines of runs the JobLog no longer has."""
        return self._logs.prune()

    # -- progress ------------------------------------------------------------------------------

    def set_progress(
        self,
        run_id: str,
        *,
        current: float,
        total: float | None,
        message: str | None,
        now: datetime,
    ) -> None:
        """Record what run *run_id* last reported with ``ctx.progress``; joins a unit of work."""
        self._progress.set(run_id, current=current, total=total, message=message, now=now)

    def progress_of(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Of *run_ids*, those that reported progress → ``current``, ``total`` (``None`` when
        unknown), ``message`` and ``updated_at``."""
        return self._progress.of(run_ids)

    def prune_progress(self) -> int:
        """Forget the progress of runs no longer in the JobLog (retention deleted them)."""
        return self._progress.prune()

    def running_runs(self) -> list[dict[str, Any]]:
        """Every running run on any node, oldest first, each with its ``progress`` (or ``None``)."""
        rows = self._runs.history(statuses=[RunStatus.running], limit=None)
        rows.reverse()
        found = self._progress.of(row["id"] for row in rows)
        for row in rows:
            row["progress"] = found.get(row["id"])
        return rows


def _sqlite_key(engine: Engine) -> str:
    database = engine.url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        return os.path.realpath(database)
    return f"{engine.url.render_as_string()}#{os.getpid()}"


__all__ = [
    "CancelOutcome",
    "CancelResult",
    "Gauges",
    "Limits",
    "Outcome",
    "Sessions",
    "Store",
    "Taken",
    "Waiter",
    "load_models",
    "make_engine",
    "node_state",
]
