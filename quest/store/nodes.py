"""Nodes: every ``quest serve`` process, its heartbeat, and the runs it owns."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update

from ..enums import RunStatus
from ..models import nodes
from ._engine import Database


def node_state(node: dict[str, Any], *, now: datetime, ttl: timedelta) -> str:
    """``stopped`` (it said so), ``lost`` (silent for longer than its own lease TTL, or *ttl*
    for a node that registered none) or ``alive``."""
    if node["stopped_at"] is not None:
        return "stopped"
    own = node.get("lease_ttl")
    if now - node["heartbeat_at"] > (ttl if own is None else timedelta(seconds=own)):
        return "lost"
    return "alive"


class Nodes:
    def __init__(self, db: Database, runs: Table) -> None:
        self.db = db
        self.runs = runs
        self._beat = update(nodes).where(nodes.c.id == bindparam("_id"))

    def register(
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
        node_id = node_id or uuid.uuid4().hex
        values = {
            "id": node_id,
            "host": host,
            "pid": pid,
            "version": version,
            "started_at": now,
            "concurrency": concurrency,
            "isolation": isolation,
            "heartbeat_at": now,
            "stopped_at": None,
            "lease_ttl": lease_ttl,
        }
        self.db.write(lambda connection: connection.execute(insert(nodes), values))
        return node_id

    def beat(self, node_id: str, now: datetime) -> None:
        db, statement = self.db, self._beat
        values = {"_id": node_id, "heartbeat_at": now}
        db.write(lambda connection: db.do(connection, statement, values))

    def stop(self, node_id: str, now: datetime) -> None:
        statement = (
            update(nodes).where(nodes.c.id == node_id).values(stopped_at=now, heartbeat_at=now)
        )
        self.db.write(lambda connection: connection.execute(statement))

    def all(self) -> list[dict[str, Any]]:
        """Every node, newest first, each with ``runs``: the JobLog rows it has running."""
        runs = self.runs
        with self.db.reading() as connection:
            found = [
                {**row._mapping, "runs": []}
                for row in connection.execute(
                    select(nodes).order_by(nodes.c.started_at.desc(), nodes.c.id)
                )
            ]
            running = connection.execute(
                select(
                    runs.c.id, runs.c.name, runs.c.started_at, runs.c.owner_host, runs.c.owner_pid
                )
                .where(runs.c.status == RunStatus.running)
                .order_by(runs.c.started_at, runs.c.id)
            ).all()
        owners: dict[tuple[str, int], dict[str, Any]] = {}
        for node in found:
            # A pid reused later on the same host belongs to the newest node.
            owners.setdefault((node["host"], node["pid"]), node)
        for run in running:
            owner = owners.get((run.owner_host, run.owner_pid))
            if owner is not None:
                owner["runs"].append({"id": run.id, "name": run.name, "started_at": run.started_at})
        return found

    def shortest_lease_ttl(self) -> float | None:
        """The shortest lease TTL among the serves not stopped: the soonest any of them takes a
        run that stopped heartbeating for abandoned."""
        statement = select(func.min(nodes.c.lease_ttl)).where(nodes.c.stopped_at.is_(None))
        with self.db.reading() as connection:
            found = connection.execute(statement).scalar()
        return None if found is None else float(found)

    def prune(self, before: datetime) -> int:
        """Forget nodes stopped, or silent, since before *before*."""
        statement = delete(nodes).where(
            or_(nodes.c.stopped_at < before, nodes.c.heartbeat_at < before)
        )
        with self.db.transaction() as connection:
            return int(connection.execute(statement).rowcount)
