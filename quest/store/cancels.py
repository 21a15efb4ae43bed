"""Cancel requests: a queued run is cancelled at once; a running one is asked to stop."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, delete, select, update

from ..enums import CancelOutcome, RunStatus
from ..models import cancels
from ._engine import Database, upsert_for
from .secrets import Secrets


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What :meth:`Store.request_cancel` did; ``status`` is the run's status afterwards."""

    outcome: CancelOutcome
    run_id: str
    status: RunStatus | None = None
    owner: str | None = None

    def __bool__(self) -> bool:
        return self.outcome in (CancelOutcome.cancelled, CancelOutcome.requested)


class Cancels:
    def __init__(self, db: Database, runs: Table, secrets: Secrets) -> None:
        self.db = db
        self.runs = runs
        self.secrets = secrets
        self._request = upsert_for(db.dialect)(cancels).on_conflict_do_nothing(
            index_elements=["run_id"]
        )

    def request(self, run_id: str, *, by: str, now: datetime) -> CancelResult:
        """Cancel *run_id*: at once when queued (one transaction, so no serve can claim it
        afterwards), by a stored and notified request when running."""
        if not run_id.isascii():
            return CancelResult(CancelOutcome.unknown, run_id)  # no run id is (a lone surrogate)
        runs = self.runs
        query = select(runs.c.status, runs.c.root_id, runs.c.owner_host, runs.c.owner_pid).where(
            runs.c.id == run_id
        )
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        with self.db.transaction() as connection:
            row = connection.execute(query).first()
            if row is None:
                return CancelResult(CancelOutcome.unknown, run_id)
            status: RunStatus = row.status
            if status.finished:
                return CancelResult(CancelOutcome.finished, run_id, status)
            if status is RunStatus.queued:
                connection.execute(
                    update(runs)
                    .where(runs.c.id == run_id, runs.c.status == RunStatus.queued)
                    .values(
                        status=RunStatus.cancelled,
                        finished_at=now,
                        reason=f"cancelled by {by}"[:200],
                        error=f"Cancelled by {by} before it started",
                    )
                )
                self.secrets.forget_in(connection, row.root_id or run_id)
                return CancelResult(CancelOutcome.cancelled, run_id, RunStatus.cancelled)
            connection.execute(
                self._request, {"run_id": run_id, "requested_by": by, "requested_at": now}
            )
            self.db.notify(connection, f"cancel:{run_id}")
            owner = f"{row.owner_host}:{row.owner_pid}" if row.owner_host else None
            return CancelResult(CancelOutcome.requested, run_id, status, owner)

    def requested(self, run_ids: Iterable[str]) -> dict[str, str]:
        """Of *run_ids*, those with a pending cancel request, and who asked."""
        wanted = list(run_ids)
        if not wanted:
            return {}
        query = select(cancels.c.run_id, cancels.c.requested_by).where(cancels.c.run_id.in_(wanted))
        with self.db.reading() as connection:
            return {run_id: by for run_id, by in connection.execute(query)}

    def prune(self) -> int:
        """Forget the requests of runs that are no longer running."""
        runs = self.runs
        alive = (
            select(runs.c.id)
            .where(runs.c.id == cancels.c.run_id, runs.c.status == RunStatus.running)
            .exists()
        )
        with self.db.transaction() as connection:
            return int(connection.execute(delete(cancels).where(~alive)).rowcount)

    def forget(self, run_id: str) -> None:
        statement = delete(cancels).where(cancels.c.run_id == run_id)
        self.db.write(lambda connection: connection.execute(statement))
