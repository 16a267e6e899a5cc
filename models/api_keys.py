"""The keys a tenant's own systems use for the REST API (api/): stored as a hash, never as the key."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Timestamp, Timestamped


class ApiKey(Timestamped, Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # What the operator calls it ("shop back office"), to tell a tenant's keys apart.
    name: Mapped[str] = mapped_column(String(100))
    # The key's first characters, shown by `wahooks api-keys list` to recognise it; not enough to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 (hex) of the whole key: the key holds 256 random bits, so a fast hash is as safe as a slow
    # one, and a request is authenticated with one indexed lookup.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
