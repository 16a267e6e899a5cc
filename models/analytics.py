"""Daily per-tenant counters, keyed by the UTC date of each event's own timestamp."""

from datetime import date
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Money, Timestamped
from models.statuses import STATUS_RULES

MESSAGES_RECEIVED = "messages_received"
ORDERS_COUNT = "orders_count"
ORDER_REVENUE = "order_revenue"
# Message counters: what `wahooks analytics` reports and charts.
COUNTERS = (MESSAGES_RECEIVED, *(rule.counter for rule in STATUS_RULES), ORDERS_COUNT)
CALLS_COUNT = "calls_count"
CALL_SECONDS = "call_seconds"
# Calls ended that day and their total duration in seconds.
CALL_COUNTERS = (CALLS_COUNT, CALL_SECONDS)


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
    messages_played: Mapped[int] = mapped_column(Integer, server_default="0")
    messages_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    orders_count: Mapped[int] = mapped_column(Integer, server_default="0")
    order_revenue: Mapped[Decimal] = mapped_column(Money, server_default="0")
    calls_count: Mapped[int] = mapped_column(Integer, server_default="0")
    call_seconds: Mapped[int] = mapped_column(Integer, server_default="0")


class WhatsAppPricingDaily(Timestamped, Base):
    """Messages Meta priced, per day, pricing category and type: each wamid counted once."""

    __tablename__ = "whatsapp_pricing_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "date", "pricing_category", "pricing_type"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    date: Mapped[date] = mapped_column(Date)
    pricing_category: Mapped[str] = mapped_column(String(64))
    # "" when Meta gives no type (its pricing before July 2025 had none): a key column cannot be NULL.
    pricing_type: Mapped[str] = mapped_column(String(64))
    messages: Mapped[int] = mapped_column(Integer, server_default="0")
