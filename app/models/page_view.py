from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime

from .base import Base


class PageView(Base):
    """One page view, rolled up into daily stats by the aggregate-analytics script."""

    __tablename__ = "page_views"
    __table_args__ = (Index("ix_page_views_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
