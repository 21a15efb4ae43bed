from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime

from .base import Base


class DataFeed(Base):
    """An external data source synchronized periodically; stale when ``last_sync_at`` is old."""

    __tablename__ = "data_feeds"
    __table_args__ = (Index("ix_data_feeds_enabled_last_sync", "enabled", "last_sync_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
