"""Sensitive inputs of queued run chains: kept beside the JobLog, never in it, until the end."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select

from ..enums import RunStatus
from ..models import in_chain, pending_secrets
from ._engine import Database


class Secrets:
    def __init__(self, db: Database, runs: Table) -> None:
        self.db = db
        self.runs = runs

    def keep(
        self, connection: Connection, root_id: str, inputs: dict[str, Any], created_at: Any
    ) -> None:
        """Keep the secrets of the chain *root_id* (the first run's are kept for the chain)."""
        table = pending_secrets
        exists = connection.execute(
            select(table.c.root_id).where(table.c.root_id == root_id)
        ).first()
        if not exists:
            connection.execute(
                insert(table), {"root_id": root_id, "inputs": inputs, "created_at": created_at}
            )

    def get(self, root_id: str | None) -> dict[str, Any]:
        if root_id is None:
            return {}
        table = pending_secrets
        with self.db.reading() as connection:
            value = connection.execute(
                select(table.c.inputs).where(table.c.root_id == root_id)
            ).scalar_one_or_none()
        return dict(value or {})

    def forget(self, root_id: str | None) -> None:
        if root_id is None:
            return
        statement = delete(pending_secrets).where(pending_secrets.c.root_id == root_id)
        self.db.write(lambda connection: connection.execute(statement))

    def forget_in(self, connection: Connection, root_id: str) -> None:
        """Forget the chain's secrets on *connection*'s transaction."""
        connection.execute(delete(pending_secrets).where(pending_secrets.c.root_id == root_id))

    def prune(self) -> int:
        """Forget the secrets of chains that have no queued or running run left."""
        table = pending_secrets
        runs = self.runs
        alive = (
            select(runs.c.id)
            .where(
                in_chain(runs, table.c.root_id),
                runs.c.status.in_([RunStatus.queued, RunStatus.running]),
            )
            .exists()
        )
        with self.db.transaction() as connection:
            return int(connection.execute(delete(table).where(~alive)).rowcount)
