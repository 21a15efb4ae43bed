from quest.models import JOB_LOG_TABLE
from quest.orm import JobLogMixin

from .base import Base


class JobLog(JobLogMixin, Base):
    """One row per run of a script: what ran, why, with which inputs, and how it ended."""

    __tablename__ = JOB_LOG_TABLE
