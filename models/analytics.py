"""Daily per-tenant counters, keyed by the UTC date of each event's own timestamp."""

from datetime import date
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Money, Timestamped
from models.statuses import STATUS_RULES

MESSAGES_RECEIVED = "messages_received"
ORDERS_COUNT = "orders_count"
ORDER_REVENUE = "order_revenue"
COUNTERS = (MESSAGES_RECEIVED, *(rule.counter for rule in STATUS_RULES), ORDERS_COUNT)


class WhatsAppAnalytics(Timestamped, Base):
    __tablename__ = "whatsapp_analytics"
    __table_args__ = (UniqueConstraint("tenant_id", "date"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    messages_received: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_sent: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_delivered: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_read: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    orders_count: Mapped[int] = mapped_column(Integer, server_default="0")
    order_revenue: Mapped[Decimal] = mapped_column(Money, server_default="0")
