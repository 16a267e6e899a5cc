"""Every webhook body received, byte for byte: Meta offers no way to fetch past webhooks."""

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Json, Timestamp

PROCESSED = "processed"
PARTIAL = "partial"
IGNORED = "ignored"
FAILED = "failed"


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # SHA-256 of the raw body: Meta's redeliveries of one body are one row.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    last_received_at: Mapped[datetime] = mapped_column(Timestamp, server_default=func.now())
    times_processed: Mapped[int] = mapped_column(Integer, server_default="0")
    processed_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    notes: Mapped[list[str] | None] = mapped_column(Json)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
