"""Orders customers place from a catalog, and their line items."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Json, Money, Timestamp, Timestamped


class WhatsAppOrder(Timestamped, Base):
    __tablename__ = "whatsapp_orders"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # The order message's wamid: one order per order message, whatever Meta redelivers.
    wamid: Mapped[str] = mapped_column(String(200), unique=True)
    wa_id: Mapped[str | None] = mapped_column(String(64), index=True)
    catalog_id: Mapped[str | None] = mapped_column(String(64))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), server_default="received")
    note: Mapped[str | None] = mapped_column(Text)
    ordered_at: Mapped[datetime] = mapped_column(Timestamp)
    raw: Mapped[dict[str, Any] | None] = mapped_column(Json)


class WhatsAppOrderItem(Timestamped, Base):
    __tablename__ = "whatsapp_order_items"
    __table_args__ = (UniqueConstraint("order_id", "position"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("whatsapp_orders.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("whatsapp_products.id", ondelete="SET NULL"), index=True
    )
    product_retailer_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    item_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
