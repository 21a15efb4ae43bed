"""What the metrics read from the database at scrape time, in one read-only connection."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Executable, String, Table, bindparam, func, select, union_all

from ..enums import RunStatus
from ..models import nodes, script_state
from ._engine import Database

#: Scripts looked up per statement: small enough that PostgreSQL does not JIT-compile it.
CHUNK = 50


@dataclass(frozen=True, slots=True)
class Gauges:
    """The state every serve on a database shares: queued runs and the latest success of each
    script, the paused scripts, and each node's heartbeat."""

    queued: dict[str, int] = field(default_factory=dict)
    last_success: dict[str, datetime] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    nodes: list[dict[str, Any]] = field(default_factory=list)


class GaugeReader:
    def __init__(self, db: Database, runs: Table) -> None:
        self.db = db
        self.runs = runs
        queued: ColumnElement[bool] = runs.c.status == RunStatus.queued
        if db.dialect == "sqlite":
            # Grouping by name, SQLite's planner would walk the whole (name, created_at) index;
            # unlikely() makes it read the few queued rows from the (status, run_after) index.
            queued = func.unlikely(queued)
        self._queued = select(runs.c.name, func.count()).where(queued).group_by(runs.c.name)
        self._paused = select(script_state.c.name).where(script_state.c.paused.is_(True))
        self._nodes = select(
            nodes.c.id, nodes.c.heartbeat_at, nodes.c.stopped_at, nodes.c.lease_ttl
        )
        self._latest: dict[int, Executable] = {}

    def read(self, names: Iterable[str]) -> Gauges:
        """The gauges, with the latest success of each script in *names*."""
        gauges = Gauges()
        wanted = sorted(set(names))
        with self.db.reading() as connection:
            for name, count in connection.execute(self._queued):
                gauges.queued[name] = int(count)
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                found = connection.execute(
                    self._latest_of(len(chunk)), {f"n{i}": name for i, name in enumerate(chunk)}
                )
                for name, finished in found:
                    if finished is not None:
                        gauges.last_success[name] = finished
            gauges.paused.update(connection.execute(self._paused).scalars())
            gauges.nodes.extend(dict(row._mapping) for row in connection.execute(self._nodes))
        return gauges

    def _latest_of(self, size: int) -> Executable:
        """For *size* script names (``n0``, ``n1``, ...), each one's latest success: the newest
        succeeded row found walking the (name, created_at) index backwards, so a lookup reads a
        few rows however long the JobLog is."""
        statement = self._latest.get(size)
        if statement is not None:
            return statement
        runs = self.runs
        terms = [select(bindparam(f"n{i}", type_=String).label("name")) for i in range(size)]
        wanted = (union_all(*terms) if size > 1 else terms[0]).subquery("wanted")
        # The status is tested through coalesce() so that no index on it applies: a planner
        # without statistics would otherwise intersect every succeeded row with each name.
        succeeded = func.coalesce(runs.c.status, RunStatus.succeeded) == RunStatus.succeeded
        latest = (
            select(runs.c.finished_at)
            .where(runs.c.name == wanted.c.name, succeeded)
            .order_by(runs.c.created_at.desc())
            .limit(1)
            .correlate(wanted)
            .scalar_subquery()
        )
        statement = select(wanted.c.name, latest.label("finished_at"))
        self._latest[size] = statement
        return statement
