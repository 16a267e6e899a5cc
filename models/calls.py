"""WhatsApp calls (the `calls` webhook field): one row per call, whatever order its events arrive in."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Timestamp, Timestamped


class WhatsAppCall(Timestamped, Base):
    __tablename__ = "whatsapp_calls"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[str] = mapped_column(String(200), unique=True)  # Meta's `wacid.…`
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("whatsapp_contacts.id", ondelete="SET NULL"), index=True
    )
    direction: Mapped[str | None] = mapped_column(String(32))  # USER_INITIATED | BUSINESS_INITIATED
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # the furthest event seen: connect < terminate
    status: Mapped[str | None] = mapped_column(String(16))  # the terminate event's COMPLETED | FAILED
    connected_at: Mapped[datetime | None] = mapped_column(Timestamp)
    terminated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    start_time: Mapped[datetime | None] = mapped_column(Timestamp)
    end_time: Mapped[datetime | None] = mapped_column(Timestamp)
    duration: Mapped[int | None] = mapped_column(Integer)  # seconds
    biz_opaque_callback_data: Mapped[str | None] = mapped_column(String(512))
