from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime, status_enum

from .base import Base


class EmailStatus(StrEnum):
    """Where a queued email stands."""

    pending = "pending"
    sent = "sent"
    failed = "failed"


class EmailQueue(Base):
    """An email waiting to be sent by the process-email-queue script."""

    __tablename__ = "email_queue"
    __table_args__ = (Index("ix_email_queue_pending", "status", "priority", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to: Mapped[str] = mapped_column("to_address", String(320))
    subject: Mapped[str] = mapped_column(String(300))
    template: Mapped[str] = mapped_column(String(100), default="email-generic")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[EmailStatus] = mapped_column(
        status_enum(EmailStatus),
        default=EmailStatus.pending,
    )
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
