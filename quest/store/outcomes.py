"""Each script's latest outcome, as the JobLog's trigger keeps it
(:data:`quest.models.outcomes`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select

from ..enums import RunStatus
from ..models import OUTCOME_LAG, outcomes
from ._engine import Database


class Outcome(NamedTuple):
    """How a script's latest finished run ended, when that run was created, and when its latest
    success was created (``None``: never)."""

    status: RunStatus
    latest_at: datetime
    succeeded_at: datetime | None
    run_id: str


class Outcomes:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.lag = OUTCOME_LAG.get(db.dialect, timedelta(0))
        """How far behind the JobLog the kept instants may be (see :data:`OUTCOME_LAG`)."""
        self._all = select(
            outcomes.c.name,
            outcomes.c.status,
            outcomes.c.created_at,
            outcomes.c.succeeded_at,
            outcomes.c.run_id,
        )

    def read(self, statuses: Iterable[RunStatus] = ()) -> dict[str, Outcome]:
        """Every script's outcome, or only those that ended in one of *statuses*."""
        wanted = list(statuses)
        query = self._all.where(outcomes.c.status.in_(wanted)) if wanted else self._all
        with self.db.reading() as connection:
            return {
                name: Outcome(status, latest_at, succeeded_at, run_id)
                for name, status, latest_at, succeeded_at, run_id in connection.execute(query)
            }
