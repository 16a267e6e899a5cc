"""What the service asks of Meta's Graph API on a business's behalf, and the media files it fetched.

An outbound request is written in the same transaction as the message or order that calls for it, so it
exists exactly when that row was new: a redelivered message never makes a second one (unique on kind and
the wamid it is about). Its state tells every attempt what an earlier one did (outbound/intents.py).
"""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Timestamp, Timestamped


class OutboundRequest(Timestamped, Base):
    __tablename__ = "whatsapp_outbound_requests"
    __table_args__ = (UniqueConstraint("kind", "subject_wamid"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # outbound/kinds.py: mark_read, order_confirmation, media
    subject_wamid: Mapped[str] = mapped_column(String(200))  # the inbound message (or order) it is about
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(Timestamp)  # Meta asked us to wait until then
    enqueued_at: Mapped[datetime | None] = mapped_column(Timestamp)
    claimed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # the RQ job id of the attempt
    result_wamid: Mapped[str | None] = mapped_column(String(200))  # what Meta returned for a send
    error: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(Timestamp)


class MediaFile(Timestamped, Base):
    """A message's media, downloaded before Meta's link expired and checked against Meta's size and hash."""

    __tablename__ = "whatsapp_media_files"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("whatsapp_messages.id", ondelete="CASCADE"), unique=True
    )
    media_id: Mapped[str] = mapped_column(String(128))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # hex
    path: Mapped[str] = mapped_column(Text)
