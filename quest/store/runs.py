"""The JobLog: one row per run, written as it starts and ends, read by history and listings."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)

from ..enums import RunStatus
from ..models import cancels, nodes, run_logs
from ._engine import Database, as_utc

ASKED = "quest_cancel_requested_by"

log = logging.getLogger("quest.store")


def queued_where(table: Table, dialect: str) -> ColumnElement[bool]:
    """*table*'s queued rows, said so that the partial index of due rows serves them: the status
    as a literal (a parameter would not match the index's condition in a generic plan), and on
    SQLite wrapped in likely(), which keeps its planner (no statistics) off the
    (status, created_at) index and its every queued row."""
    queued: ColumnElement[bool] = table.c.status == literal_column(f"'{RunStatus.queued.value}'")
    return func.likely(queued) if dialect == "sqlite" else queued


def late_end(connection: Connection, table: Table, run_id: str, values: dict[str, Any]) -> None:
    """Log the end of a run whose row was no longer ``running`` (not written over that): at
    debug level when the row holds this very end already (its first write committed but its
    answer was lost, and the write went again), else as a warning naming what the row says."""
    status = values.get("status")
    try:
        row = connection.execute(
            select(table.c.status, table.c.finished_at).where(table.c.id == run_id)
        ).first()
    except Exception:
        row = None
    if row is not None and row.status == status and row.finished_at == values.get("finished_at"):
        log.debug(
            "run %s: its end %s was recorded already (a write that lost its answer went again)",
            run_id,
            status,
            extra={"run_id": run_id, "action": "late_end"},
        )
        return
    log.warning(
        "run %s was no longer running when it ended %s (%s); its end is not recorded over that",
        run_id,
        status,
        "gone"
        if row is None
        else f"it is {getattr(row.status, 'value', row.status)}: another "
        "serve took it for abandoned",
        extra={"run_id": run_id, "action": "late_end"},
    )


class Runs:
    """Rows of the JobLog table (the application's ``JobLog`` or quest's fallback)."""

    def __init__(self, db: Database, table: Table) -> None:
        self.db = db
        self.table = table
        # An application's JobLog may add columns with Python-side defaults or onupdate; those
        # rows go through SQLAlchemy's full execution, which runs them.
        self.plain = all(
            (c.default is None or c.default.is_scalar) and c.onupdate is None for c in table.c
        )
        self.insert_statement = insert(table)
        self._update = update(table).where(table.c.id == bindparam("_run_id"))
        self.finish_statement = update(table).where(
            table.c.id == bindparam("_run_id"), table.c.status == RunStatus.running
        )
        """A run's end, written only while its row is still ``running`` (``_run_id``)."""

    def insert(self, values: dict[str, Any]) -> None:
        db, statement = self.db, self.insert_statement
        if self.plain:
            db.write(lambda connection: db.do(connection, statement, values))
        else:
            db.write(lambda connection: connection.execute(statement, values))

    def update(self, run_id: str, values: dict[str, Any]) -> None:
        db, statement = self.db, self._update
        params = {**values, "_run_id": run_id}
        if self.plain:
            db.write(lambda connection: db.do(connection, statement, params))
        else:
            db.write(lambda connection: connection.execute(statement, params))

    def beat(self, run_id: str, now: datetime) -> bool:
        """Renew the heartbeat of *run_id* if it is still ``running``; whether it was (another
        serve may have taken it for abandoned while this one was silent)."""
        statement = (
            update(self.table)
            .where(self.table.c.id == run_id, self.table.c.status == RunStatus.running)
            .values(heartbeat_at=now)
        )
        return bool(self.db.write(lambda connection: connection.execute(statement).rowcount))

    def finish(self, run_id: str, values: dict[str, Any]) -> None:
        """Record the end of a run that is still ``running``. A row another serve has meanwhile
        marked ``abandoned`` (its owner looked dead) keeps that status: the late end is logged,
        not written over it."""
        db, statement = self.db, self.finish_statement
        params = {**values, "_run_id": run_id}

        def write(connection: Connection) -> None:
            if self.plain:
                changed = db.do(connection, statement, params)
            else:
                changed = connection.execute(statement, params).rowcount
            if not changed:
                late_end(connection, self.table, run_id, values)

        db.write(write)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.db.reading() as connection:
            row = connection.execute(select(self.table).where(self.table.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def ids_starting(self, prefix: str, *, limit: int = 2) -> list[str]:
        """Run ids beginning with *prefix* (what ``quest history`` shows), at most *limit*."""
        runs = self.table
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            select(runs.c.id)
            .where(
                runs.c.id.like(escaped + "%", escape="\\"),
                # SQLite's LIKE ignores case; an id's beginning is matched as written.
                func.substr(runs.c.id, 1, len(prefix)) == prefix,
            )
            .order_by(runs.c.id)
            .limit(limit)
        )
        with self.db.reading() as connection:
            return list(connection.execute(query).scalars())

    def history(
        self,
        name: str | None = None,
        *,
        statuses: Iterable[RunStatus] = (),
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[dict[str, Any]]:
        """Runs, newest first."""
        runs = self.table
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
        with self.db.reading() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def last(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The latest finished run of each script in *names*."""
        runs = self.table
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
        with self.db.reading() as connection:
            return {row.name: dict(row._mapping) for row in connection.execute(query)}

    def next_queued(self) -> datetime | None:
        """When the earliest queued run comes due (read from the queue's partial index)."""
        query = select(func.min(self.table.c.run_after)).where(
            queued_where(self.table, self.db.dialect)
        )
        with self.db.reading() as connection:
            return as_utc(connection.execute(query).scalar())

    def count(self, name: str | None = None, status: RunStatus | None = None) -> int:
        query = select(func.count()).select_from(self.table)
        if name is not None:
            query = query.where(self.table.c.name == name)
        if status is not None:
            query = query.where(self.table.c.status == status)
        with self.db.reading() as connection:
            return int(connection.execute(query).scalar_one())

    def names(self) -> list[str]:
        with self.db.reading() as connection:
            return list(connection.execute(select(self.table.c.name).distinct()).scalars())

    def prune(
        self,
        name: str,
        statuses: Sequence[RunStatus],
        *,
        older_than: datetime | None,
        keep: int | None,
    ) -> int:
        """Delete finished runs of *name* with *statuses*: older than a date, beyond a count."""
        runs = self.table
        deleted = 0
        where = [runs.c.name == name, runs.c.status.in_(list(statuses))]
        with self.db.transaction() as connection:
            if older_than is not None:
                deleted += _delete_with_logs(
                    connection, runs, [*where, runs.c.created_at < older_than]
                )
            if keep is not None:
                newest_beyond = (
                    select(runs.c.created_at)
                    .where(*where)
                    .order_by(runs.c.created_at.desc())
                    .offset(keep)
                    .limit(1)
                    .scalar_subquery()
                )
                deleted += _delete_with_logs(
                    connection, runs, [*where, runs.c.created_at <= newest_beyond]
                )
        return int(deleted)

    def abandon_stale(self, *, now: datetime, ttl: timedelta) -> list[dict[str, Any]]:
        """End every running row whose owner stopped heartbeating; return them.

        A row is marked ``abandoned`` (the caller may retry it), or ``cancelled`` when a cancel
        request for it is pending (never retried). Each returned row carries its new status.
        """
        runs = self.table
        with self.db.reading() as connection:
            stale = [
                dict(row._mapping)
                for row in connection.execute(
                    select(runs, cancels.c.requested_by.label(ASKED))
                    .outerjoin(cancels, cancels.c.run_id == runs.c.id)
                    .where(runs.c.status == RunStatus.running, runs.c.heartbeat_at < now - ttl)
                )
            ]
            owners = _owner_ttls(connection, stale)
        ended = []
        for row in stale:
            # Its owner renews the heartbeat at a third of its own TTL, which may be longer than
            # the caller's: the row is stale only past the longer of the two.
            owned = owners.get((row["owner_host"], row["owner_pid"]))
            cutoff = now - max(ttl, timedelta(seconds=owned or 0))
            beat = as_utc(row["heartbeat_at"])
            if beat is not None and beat >= cutoff:
                continue
            asked = row.pop(ASKED)
            owner = f"{row['owner_host']}:{row['owner_pid']}"
            last = f"{row['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC"
            if asked is not None:
                status = RunStatus.cancelled
                error = f"Cancelled by {asked}; owner {owner} stopped heartbeating (last {last})"
            else:
                status = RunStatus.abandoned
                error = f"Abandoned: owner {owner} stopped heartbeating (last {last})"
            with self.db.transaction() as connection:
                taken = connection.execute(
                    update(runs)
                    .where(
                        runs.c.id == row["id"],
                        runs.c.status == RunStatus.running,
                        runs.c.heartbeat_at < cutoff,
                    )
                    .values(status=status, finished_at=now, error=error)
                ).rowcount
                if taken and asked is not None:
                    connection.execute(delete(cancels).where(cancels.c.run_id == row["id"]))
            if taken:
                row["status"] = status
                ended.append(row)
        return ended


def _owner_ttls(
    connection: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, int], float]:
    """The lease TTL each serve still registered as running gave for itself, by (host, pid), for
    the owners of *rows*; the longest where a pid was used twice."""
    hosts = {row["owner_host"] for row in rows if row["owner_host"] is not None}
    if not hosts:
        return {}
    found: dict[tuple[str, int], float] = {}
    for host, pid, lease_ttl in connection.execute(
        select(nodes.c.host, nodes.c.pid, nodes.c.lease_ttl).where(
            nodes.c.host.in_(hosts), nodes.c.stopped_at.is_(None), nodes.c.lease_ttl.is_not(None)
        )
    ):
        found[(host, pid)] = max(lease_ttl, found.get((host, pid), 0.0))
    return found


def _delete_with_logs(connection: Connection, runs: Table, where: list[Any]) -> int:
    """Delete the runs matching *where* and the lines they logged; returns the runs deleted."""
    connection.execute(
        delete(run_logs).where(run_logs.c.run_id.in_(select(runs.c.id).where(*where)))
    )
    return int(connection.execute(delete(runs).where(*where)).rowcount)
