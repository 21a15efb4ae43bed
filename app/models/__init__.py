"""The application's SQLAlchemy models; quest's JobLog is one of them."""

from .base import Base
from .job_log import JobLog
from .session import Session
from .user import User

__all__ = ["Base", "JobLog", "Session", "User"]
