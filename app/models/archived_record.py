from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime

from .base import Base


class ArchivedRecord(Base):
    """A soft-deleted record, kept for a retention period before it is purged."""

    __tablename__ = "archived_records"
    __table_args__ = (Index("ix_archived_records_archived_at", "archived_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_type: Mapped[str] = mapped_column(String(100))
    record_id: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime)
