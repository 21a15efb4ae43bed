from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime, status_enum

from .base import Base


class WebhookStatus(StrEnum):
    """Where a webhook delivery stands."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    permanently_failed = "permanently_failed"


class WebhookDelivery(Base):
    """An outgoing webhook call, retried with backoff by the retry-webhooks script."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_retry", "status", "attempts", "last_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[Any] = mapped_column(JSON)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    status: Mapped[WebhookStatus] = mapped_column(
        status_enum(WebhookStatus),
        default=WebhookStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
