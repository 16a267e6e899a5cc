"""Orders customers place from a catalog, their line items, and the statuses a back office sets."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Json, Money, Timestamp, Timestamped


@dataclass(frozen=True)
class OrderStatus:
    status: str
    rank: int  # an order only moves to a status of a higher rank
    final: bool = False  # nothing moves an order on from here


# The back office's statuses (the REST API sets them); a new order is `received`. Forward only, skipping
# allowed: received -> confirmed -> shipped -> delivered, and cancelled from any status before delivered.
ORDER_STATUSES = (
    OrderStatus("received", 0),
    OrderStatus("confirmed", 1),
    OrderStatus("shipped", 2),
    OrderStatus("delivered", 3, final=True),
    OrderStatus("cancelled", 4, final=True),
)
ORDER_STATUS = {rule.status: rule for rule in ORDER_STATUSES}
RECEIVED = ORDER_STATUSES[0].status


def order_may_move(current: str, new: str) -> bool:
    """Whether a back office may move an order from `current` to `new`."""
    now = ORDER_STATUS[current]
    return not now.final and ORDER_STATUS[new].rank > now.rank


class WhatsAppOrder(Timestamped, Base):
    __tablename__ = "whatsapp_orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{rule.status}'" for rule in ORDER_STATUSES)), name="status"
        ),
        # The API lists a tenant's orders newest first, optionally of one status or one customer, a page at
        # a time (keyset on ordered_at, id): each page is one index range scan (bench/api_orders.py).
        Index(None, "tenant_id", "ordered_at", "id"),
        Index(None, "tenant_id", "status", "ordered_at", "id"),
        Index(None, "tenant_id", "wa_id", "ordered_at", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The order message's wamid: one order per order message, whatever Meta redelivers.
    wamid: Mapped[str] = mapped_column(String(200), unique=True)
    wa_id: Mapped[str | None] = mapped_column(String(64))
    catalog_id: Mapped[str | None] = mapped_column(String(64))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), server_default=RECEIVED)
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
