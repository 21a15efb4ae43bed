"""The application's SQLAlchemy models; quest's JobLog is one of them."""

from .activity import Activity
from .archived_record import ArchivedRecord
from .base import Base
from .cache_entry import CacheEntry
from .customer import Customer
from .daily_stat import DailyStat
from .data_feed import DataFeed
from .email_queue import EmailQueue, EmailStatus
from .job_log import JobLog
from .order import Order, OrderStatus
from .page_view import PageView
from .session import Session
from .user import User
from .webhook_delivery import WebhookDelivery, WebhookStatus

__all__ = [
    "Activity",
    "ArchivedRecord",
    "Base",
    "CacheEntry",
    "Customer",
    "DailyStat",
    "DataFeed",
    "EmailQueue",
    "EmailStatus",
    "JobLog",
    "Order",
    "OrderStatus",
    "PageView",
    "Session",
    "User",
    "WebhookDelivery",
    "WebhookStatus",
]
