"""Product catalogs and their products, as the business sells them on WhatsApp."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Id, Money, Timestamp, Timestamped


class WhatsAppCatalog(Timestamped, Base):
    __tablename__ = "whatsapp_catalogs"
    __table_args__ = (UniqueConstraint("tenant_id", "catalog_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    catalog_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    # Deleted through the API: hidden from it, kept for the orders that name it (restored by re-creating).
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WhatsAppProduct(Timestamped, Base):
    __tablename__ = "whatsapp_products"
    __table_args__ = (UniqueConstraint("catalog_id", "retailer_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("whatsapp_catalogs.id", ondelete="CASCADE"))
    retailer_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    # Inventory lives in another system: a plain reference, deliberately no foreign key.
    inventory_product_id: Mapped[str | None] = mapped_column(String(100))
    # What `wahooks catalog sync` learnt from Meta: its id and availability ("in stock", ...), when a sync
    # last saw the product, and since when Meta no longer lists it (kept, never deleted: orders point here).
    meta_product_id: Mapped[str | None] = mapped_column(String(64))
    availability: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[datetime | None] = mapped_column(Timestamp)
    removed_upstream_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Deleted through the API: hidden from it, kept for the order items that point here.
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)
