"""Account-level events (templates, account updates, quality, capabilities), routed by WABA id."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Json, Timestamp


class WhatsAppAccountEvent(Base):
    __tablename__ = "whatsapp_account_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # The tenant whose settings hold this WABA id; NULL for a WABA no tenant (or several) has.
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    waba_id: Mapped[str | None] = mapped_column(String(64), index=True)
    field: Mapped[str] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json)
    event_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # SHA-256 of (waba, field, time, detail): the same event delivered again, in any body, is one row.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
