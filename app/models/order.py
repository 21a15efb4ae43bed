from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, Numeric
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quest.models import UTCDateTime, status_enum

from .base import Base
from .customer import Customer


class OrderStatus(StrEnum):
    """Where an order stands; only completed orders count as revenue."""

    pending = "pending"
    completed = "completed"
    refunded = "refunded"
    cancelled = "cancelled"


class Order(Base):
    """An order placed by a customer."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    status: Mapped[OrderStatus] = mapped_column(
        status_enum(OrderStatus),
        default=OrderStatus.pending,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship(lazy="joined")
