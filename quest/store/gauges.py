"""What the metrics read from the database at scrape time, in one read-only connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select

from ..enums import RunStatus
from ..models import nodes, script_state
from ._engine import Database


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
        # The queued rows come from the (status, run_after) index; the latest success of each
        # script is an aggregate over its succeeded rows, which retention keeps bounded.
        self._per_script = (
            select(runs.c.name, runs.c.status, func.count(), func.max(runs.c.finished_at))
            .where(runs.c.status.in_([RunStatus.queued, RunStatus.succeeded]))
            .group_by(runs.c.name, runs.c.status)
        )
        self._paused = select(script_state.c.name).where(script_state.c.paused.is_(True))
        self._nodes = select(nodes.c.id, nodes.c.heartbeat_at, nodes.c.stopped_at)

    def read(self) -> Gauges:
        gauges = Gauges()
        with self.db.reading() as connection:
            for name, status, count, finished in connection.execute(self._per_script):
                if RunStatus(status) is RunStatus.queued:
                    gauges.queued[name] = int(count)
                elif finished is not None:
                    gauges.last_success[name] = finished
            gauges.paused.update(connection.execute(self._paused).scalars())
            gauges.nodes.extend(dict(row._mapping) for row in connection.execute(self._nodes))
        return gauges
