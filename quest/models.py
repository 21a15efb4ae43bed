"""quest's tables: the JobLog columns (mapped by the app's ``JobLog`` model) and its own bookkeeping.

The JobLog lives in the application's models (``app/models/job_log.py``) so the app can query it
like any other model; it takes its columns from :class:`JobLogMixin`. Slot claims, overlap leases
and script state are quest's own tables, in :data:`QuestBase.metadata`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from .enums import RunStatus, Trigger

JOB_LOG_TABLE = "quest_job_log"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC, returned aware on every backend (SQLite included)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; quest stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(kind: type[Any]) -> Enum:
    return Enum(kind, native_enum=False, length=20, validate_strings=True,
                values_callable=lambda e: [m.value for m in e])


class JobLogMixin:
    """The columns of the JobLog: one row per run, created at start and finished at the end."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus))
    trigger: Mapped[Trigger] = mapped_column(_enum(Trigger))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    root_id: Mapped[str | None] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(200))
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(200))
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_pid: Mapped[int | None] = mapped_column(Integer)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = JOB_LOG_TABLE
        return (
            Index(f"ix_{table}_name_created", "name", "created_at"),
            Index(f"ix_{table}_created", "created_at"),
            Index(f"ix_{table}_status_run_after", "status", "run_after"),
            Index(f"ix_{table}_root", "root_id"),
        )

    def __repr__(self) -> str:
        return f"<JobLog {self.name} {self.id} {self.status.value}>"


class QuestBase(DeclarativeBase):
    """Metadata of quest's own bookkeeping tables."""


class SlotClaim(QuestBase):
    """A scheduled slot (script, instant) taken by one serve; the primary key makes it unique."""

    __tablename__ = "quest_slots"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(QuestBase):
    """The overlap lease of a script: held by one run, renewed by heartbeat, lost at expiry."""

    __tablename__ = "quest_leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScriptState(QuestBase):
    """Runtime state of a script that outlives processes (paused)."""

    __tablename__ = "quest_script_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PendingSecret(QuestBase):
    """Sensitive inputs of a queued run chain, kept only until it ends; never in the JobLog."""

    __tablename__ = "quest_pending_secrets"

    root_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
