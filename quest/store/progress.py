"""Progress: what each run last reported with ``ctx.progress``, one row per run.

The row is written while the run runs (at most about once a second, by the runner) and kept with
the run once it ends, so history shows where a run stopped; retention deletes it with the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, select

from ..models import progress
from ._engine import Database, upsert_for

BATCH = 500
"""Run ids per ``IN (...)`` when reading many runs' progress."""


class Progress:
    def __init__(self, db: Database, runs: Table) -> None:
        self.db = db
        self.runs = runs
        upsert = upsert_for(db.dialect)(progress)
        self._set = upsert.on_conflict_do_update(
            index_elements=["run_id"],
            set_={
                "current": upsert.excluded.current,
                "total": upsert.excluded.total,
                "message": upsert.excluded.message,
                "updated_at": upsert.excluded.updated_at,
            },
        )

    def set(
        self,
        run_id: str,
        *,
        current: float,
        total: float | None,
        message: str | None,
        now: datetime,
    ) -> None:
        values = {
            "run_id": run_id,
            "current": current,
            "total": total,
            "message": message,
            "updated_at": now,
        }
        statement = self._set
        self.db.write(lambda connection: connection.execute(statement, values))

    def of(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Run id → its progress (``current``, ``total``, ``message``, ``updated_at``)."""
        wanted = list(dict.fromkeys(run_ids))
        found: dict[str, dict[str, Any]] = {}
        if not wanted:
            return found
        with self.db.reading() as connection:
            for start in range(0, len(wanted), BATCH):
                query = select(progress).where(progress.c.run_id.in_(wanted[start : start + BATCH]))
                for row in connection.execute(query):
                    data = dict(row._mapping)
                    found[data.pop("run_id")] = data
        return found

    def prune(self) -> int:
        """Forget the progress of runs that are no longer in the JobLog."""
        runs = self.runs
        known = select(runs.c.id).where(runs.c.id == progress.c.run_id).exists()
        with self.db.transaction() as connection:
            return int(connection.execute(delete(progress).where(~known)).rowcount)
