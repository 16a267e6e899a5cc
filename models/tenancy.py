"""Tenants and the WhatsApp Business settings that route events to them."""

from sqlalchemy import Boolean, ForeignKey, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Timestamped


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class WhatsAppBusinessSettings(Timestamped, Base):
    __tablename__ = "whatsapp_business_settings"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), unique=True)
    phone_number_id: Mapped[str] = mapped_column(String(64), unique=True)
    waba_id: Mapped[str | None] = mapped_column(String(64), index=True)
    display_phone_number: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    default_catalog_id: Mapped[str | None] = mapped_column(String(64))
    language_code: Mapped[str] = mapped_column(String(16), server_default="en")
    greeting_message: Mapped[str | None] = mapped_column(Text)
    mark_read_on_receipt: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Talking back to Meta (outbound/): each off until set with `wahooks tenants configure`.
    typing_indicator: Mapped[bool] = mapped_column(Boolean, server_default=false())
    confirm_orders: Mapped[bool] = mapped_column(Boolean, server_default=false())
    order_confirmation_template: Mapped[str | None] = mapped_column(String(512))
    order_confirmation_text: Mapped[str | None] = mapped_column(Text)
    download_media: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # The tenant's own Graph API token, Fernet-encrypted with WAHOOKS_TOKEN_KEYS (outbound/tokens.py).
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
