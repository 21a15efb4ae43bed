"""The lines each run logged (``quest_run_logs``): written by the runner, bounded per run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, insert, select

from ..models import run_logs
from ._engine import Database

TAIL_WIDTH = 500
"""Characters of a run's last line that :meth:`Logs.tail` gives (a live view shows one row)."""


class Logs:
    def __init__(self, db: Database, runs: Table) -> None:
        self.db = db
        self.runs = runs

    def append(
        self,
        run_id: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        keep_from: int,
        marker: Mapping[str, Any] | None,
    ) -> None:
        """Add *rows* (seq, at, level, logger, message) to *run_id*'s lines, delete its lines
        numbered below *keep_from*, and set its marker line (seq 0) when one is given."""
        values = [{**row, "run_id": run_id} for row in rows]
        logs = run_logs

        def write(connection: Connection) -> None:
            if values:
                connection.execute(insert(logs), values)
            connection.execute(
                delete(logs).where(logs.c.run_id == run_id, logs.c.seq > 0, logs.c.seq < keep_from)
            )
            if marker is not None:
                connection.execute(delete(logs).where(logs.c.run_id == run_id, logs.c.seq == 0))
                connection.execute(insert(logs), [{**marker, "run_id": run_id}])

        self.db.write(write)

    def lines(self, run_ids: Iterable[str], *, after: int | None = None) -> list[dict[str, Any]]:
        """The lines of *run_ids* in order (the marker first); only those numbered after
        *after* when given (the marker included)."""
        wanted = list(run_ids)
        if not wanted:
            return []
        query = select(run_logs).where(run_logs.c.run_id.in_(wanted))
        if after is not None:
            query = query.where((run_logs.c.seq > after) | (run_logs.c.seq == 0))
        query = query.order_by(run_logs.c.run_id, run_logs.c.seq)
        with self.db.reading() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def tail(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The first line of the last message (cut to :data:`TAIL_WIDTH` characters) of each of
        *run_ids* that logged something."""
        wanted = list(run_ids)
        if not wanted:
            return {}
        last = (
            select(run_logs.c.run_id, func.max(run_logs.c.seq).label("seq"))
            .where(run_logs.c.run_id.in_(wanted), run_logs.c.seq > 0)
            .group_by(run_logs.c.run_id)
            .subquery()
        )
        query = select(run_logs.c.run_id, run_logs.c.message).join(
            last, and_(run_logs.c.run_id == last.c.run_id, run_logs.c.seq == last.c.seq)
        )
        with self.db.reading() as connection:
            return {
                run_id: (message.splitlines() or [""])[0][:TAIL_WIDTH]
                for run_id, message in connection.execute(query)
            }

    def prune(self) -> int:
        """Delete the lines of runs the JobLog no longer has."""
        runs = self.runs
        orphan = ~select(runs.c.id).where(runs.c.id == run_logs.c.run_id).exists()
        with self.db.transaction() as connection:
            return int(connection.execute(delete(run_logs).where(orphan)).rowcount)
