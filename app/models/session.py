from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quest.models import UTCDateTime

from .base import Base


class Session(Base):
    """A signed-in user's web session."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_last_active", "last_active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    data: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_active: Mapped[datetime] = mapped_column(UTCDateTime)
