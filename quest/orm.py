"""The JobLog as an ORM mixin, for an application that maps it among its own models.

    from quest.models import JOB_LOG_TABLE
    from quest.orm import JobLogMixin

    class JobLog(JobLogMixin, Base):
        __tablename__ = JOB_LOG_TABLE

Its columns and indexes are those of quest's own Core table (:func:`quest.models.job_log_columns`),
so either gives the same schema. Importing this module imports SQLAlchemy's ORM, which
:mod:`quest.models` does not.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import declared_attr

from .enums import RunStatus, Trigger
from .models import job_log_columns, job_log_indexes

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped


class JobLogMixin:
    """The columns of the JobLog: one row per run, created at start and finished at the end."""

    if TYPE_CHECKING:
        id: Mapped[str]
        name: Mapped[str]
        status: Mapped[RunStatus]
        trigger: Mapped[Trigger]
        attempt: Mapped[int]
        max_attempts: Mapped[int]
        root_id: Mapped[str | None]
        key: Mapped[str | None]
        inputs: Mapped[dict[str, Any] | None]
        scheduled_for: Mapped[datetime | None]
        created_at: Mapped[datetime]
        run_after: Mapped[datetime | None]
        started_at: Mapped[datetime | None]
        finished_at: Mapped[datetime | None]
        heartbeat_at: Mapped[datetime | None]
        duration_ms: Mapped[int | None]
        result: Mapped[Any | None]
        error: Mapped[str | None]
        traceback: Mapped[str | None]
        reason: Mapped[str | None]
        owner_host: Mapped[str | None]
        owner_pid: Mapped[int | None]

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return job_log_indexes()

    def __repr__(self) -> str:
        return f"<JobLog {self.name} {self.id} {self.status.value}>"


# Declarative copies a mixin's Column objects into each class that maps it.
for _column in job_log_columns():
    setattr(JobLogMixin, _column.key, _column)
del _column
