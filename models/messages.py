"""Every message a business receives or sends, and each delivery status first seen for it."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Json, Timestamp, Timestamped

INBOUND = "inbound"
OUTBOUND = "outbound"
LIVE = "live"  # sent to the webhook as it happened
HISTORY = "history"  # imported from the WhatsApp Business app's past chats (coexistence): never counted


class WhatsAppMessage(Timestamped, Base):
    __tablename__ = "whatsapp_messages"
    __table_args__ = (CheckConstraint(f"direction IN ('{INBOUND}', '{OUTBOUND}')", name="direction"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    wamid: Mapped[str] = mapped_column(String(200), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    # Meta's type string verbatim, including types this code does not know yet; NULL for a
    # status-only row whose message we never saw.
    message_type: Mapped[str | None] = mapped_column(String(64))
    wa_id: Mapped[str | None] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(128))
    contact_name: Mapped[str | None] = mapped_column(String(256))
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), server_default=LIVE)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("whatsapp_contacts.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("whatsapp_orders.id", ondelete="SET NULL"), index=True
    )
    message_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    read_at: Mapped[datetime | None] = mapped_column(Timestamp)
    played_at: Mapped[datetime | None] = mapped_column(Timestamp)
    failed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    failure_code: Mapped[int | None] = mapped_column(Integer)
    failure_title: Mapped[str | None] = mapped_column(Text)
    failure_details: Mapped[str | None] = mapped_column(Text)
    context_wamid: Mapped[str | None] = mapped_column(String(200))
    target_wamid: Mapped[str | None] = mapped_column(String(200))
    forwarded: Mapped[bool] = mapped_column(Boolean, server_default=false())
    media_id: Mapped[str | None] = mapped_column(String(128))
    media_mime_type: Mapped[str | None] = mapped_column(String(128))
    media_filename: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(10, 7))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(10, 7))
    conversation_id: Mapped[str | None] = mapped_column(String(128))
    pricing_category: Mapped[str | None] = mapped_column(String(64))
    pricing_model: Mapped[str | None] = mapped_column(String(32))
    pricing_type: Mapped[str | None] = mapped_column(String(64))
    # The time of the status whose pricing the message holds (the earliest that carried any).
    priced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    biz_opaque_callback_data: Mapped[str | None] = mapped_column(String(512))
    raw: Mapped[dict[str, Any] | None] = mapped_column(Json)


class WhatsAppMessageStatus(Base):
    """The first sighting of each (wamid, status): what analytics count, whatever Meta redelivers."""

    __tablename__ = "whatsapp_message_statuses"
    __table_args__ = (UniqueConstraint("wamid", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    wamid: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime] = mapped_column(Timestamp)
    recipient_id: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[dict[str, Any] | None] = mapped_column(Json)
