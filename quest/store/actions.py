"""What people did to scripts and runs (the dashboard's actions), and discarding queued runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select, update

from ..enums import RunStatus
from ..models import actions
from ._engine import Database
from .secrets import Secrets


class Actions:
    def __init__(self, db: Database, runs: Table, secrets: Secrets) -> None:
        self.db = db
        self.runs = runs
        self.secrets = secrets

    def record(
        self, *, who: str, action: str, target: str, detail: dict[str, Any] | None, now: datetime
    ) -> None:
        row = {
            "at": now,
            "who": who[:255],
            "action": action[:50],
            "target": target[:200],
            "detail": detail,
        }
        self.db.write(lambda connection: connection.execute(insert(actions), row))

    def recent(self, limit: int) -> list[dict[str, Any]]:
        query = select(actions).order_by(actions.c.at.desc(), actions.c.id.desc()).limit(limit)
        with self.db.reading() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def discard(self, run_id: str, *, by: str, now: datetime) -> bool:
        """End queued run *run_id* as ``discarded``; ``False`` when it is not queued (any more)."""
        runs = self.runs
        with self.db.transaction() as connection:
            root_id = connection.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == RunStatus.queued)
                .values(
                    status=RunStatus.discarded,
                    finished_at=now,
                    reason=f"discarded by {by}"[:200],
                    error=f"Discarded by {by} before it started",
                )
                .returning(runs.c.root_id)
            ).scalar_one_or_none()
            if root_id is None:
                return False
            self.secrets.forget_in(connection, root_id)
            return True
