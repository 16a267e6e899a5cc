"""The business's customers, one row each per tenant, by business-scoped user id and phone number."""

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Timestamp, Timestamped


class WhatsAppContact(Timestamped, Base):
    __tablename__ = "whatsapp_contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        UniqueConstraint("tenant_id", "wa_id"),
        CheckConstraint("user_id IS NOT NULL OR wa_id IS NOT NULL", name="identified"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The business-scoped user id (BSUID, `US.13491208655302741918`); NULL until Meta first gives it.
    user_id: Mapped[str | None] = mapped_column(String(128))
    parent_user_id: Mapped[str | None] = mapped_column(String(128))
    # The phone number: since 2026 Meta omits it for a customer who hides their number.
    wa_id: Mapped[str | None] = mapped_column(String(64))
    # The ids a user_changed_number / user_changed_user_id notice replaced: a late event that still
    # carries one finds this row.
    previous_user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    previous_wa_id: Mapped[str | None] = mapped_column(String(64), index=True)
    profile_name: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(128))
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The time of the preference marketing_opt_out holds: an older one arriving later never overrides it.
    marketing_preference_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # The WhatsApp Business app's address book (coexistence smb_app_state_sync).
    in_address_book: Mapped[bool] = mapped_column(Boolean, server_default=false())
    address_book_name: Mapped[str | None] = mapped_column(String(256))
    address_book_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Earliest and latest event of this customer's (not of its arrival).
    first_seen_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime | None] = mapped_column(Timestamp)
