"""Initial schema: the seven WhatsApp Business tables, tenants, statuses and raw events.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 13:29:04.028235
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "last_received_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("times_processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column(
            "notes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("sha256", name=op.f("uq_webhook_events_sha256")),
    )
    op.create_index(op.f("ix_webhook_events_outcome"), "webhook_events", ["outcome"], unique=False)
    op.create_index(
        op.f("ix_webhook_events_processed_at"),
        "webhook_events",
        ["processed_at"],
        unique=False,
    )
    op.create_table(
        "whatsapp_analytics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("messages_received", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("orders_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "order_revenue",
            sa.Numeric(precision=18, scale=4),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_analytics_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_analytics")),
        sa.UniqueConstraint("tenant_id", "date", name=op.f("uq_whatsapp_analytics_tenant_id_date")),
    )
    op.create_table(
        "whatsapp_business_settings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("waba_id", sa.String(length=64), nullable=True),
        sa.Column("display_phone_number", sa.String(length=32), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("default_catalog_id", sa.String(length=64), nullable=True),
        sa.Column("language_code", sa.String(length=16), server_default="en", nullable=False),
        sa.Column("greeting_message", sa.Text(), nullable=True),
        sa.Column(
            "mark_read_on_receipt",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_business_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_business_settings")),
        sa.UniqueConstraint(
            "phone_number_id",
            name=op.f("uq_whatsapp_business_settings_phone_number_id"),
        ),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_whatsapp_business_settings_tenant_id")),
    )
    op.create_index(
        op.f("ix_whatsapp_business_settings_waba_id"),
        "whatsapp_business_settings",
        ["waba_id"],
        unique=False,
    )
    op.create_table(
        "whatsapp_catalogs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("catalog_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_catalogs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_catalogs")),
        sa.UniqueConstraint(
            "tenant_id",
            "catalog_id",
            name=op.f("uq_whatsapp_catalogs_tenant_id_catalog_id"),
        ),
    )
    op.create_table(
        "whatsapp_message_statuses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("wamid", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipient_id", sa.String(length=64), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_message_statuses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_message_statuses")),
        sa.UniqueConstraint("wamid", "status", name=op.f("uq_whatsapp_message_statuses_wamid_status")),
    )
    op.create_index(
        op.f("ix_whatsapp_message_statuses_tenant_id"),
        "whatsapp_message_statuses",
        ["tenant_id"],
        unique=False,
    )
    op.create_table(
        "whatsapp_orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("wamid", sa.String(length=200), nullable=False),
        sa.Column("wa_id", sa.String(length=64), nullable=True),
        sa.Column("catalog_id", sa.String(length=64), nullable=True),
        sa.Column("total_amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="received", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_orders_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_orders")),
        sa.UniqueConstraint("wamid", name=op.f("uq_whatsapp_orders_wamid")),
    )
    op.create_index(
        op.f("ix_whatsapp_orders_tenant_id"),
        "whatsapp_orders",
        ["tenant_id"],
        unique=False,
    )
    op.create_index(op.f("ix_whatsapp_orders_wa_id"), "whatsapp_orders", ["wa_id"], unique=False)
    op.create_table(
        "whatsapp_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "tenant_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("wamid", sa.String(length=200), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("message_type", sa.String(length=64), nullable=True),
        sa.Column("wa_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("contact_name", sa.String(length=256), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "order_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_code", sa.Integer(), nullable=True),
        sa.Column("failure_title", sa.Text(), nullable=True),
        sa.Column("failure_details", sa.Text(), nullable=True),
        sa.Column("context_wamid", sa.String(length=200), nullable=True),
        sa.Column("target_wamid", sa.String(length=200), nullable=True),
        sa.Column("forwarded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("media_id", sa.String(length=128), nullable=True),
        sa.Column("media_mime_type", sa.String(length=128), nullable=True),
        sa.Column("media_filename", sa.Text(), nullable=True),
        sa.Column("latitude", sa.Numeric(precision=10, scale=7), nullable=True),
        sa.Column("longitude", sa.Numeric(precision=10, scale=7), nullable=True),
        sa.Column("conversation_id", sa.String(length=128), nullable=True),
        sa.Column("pricing_category", sa.String(length=64), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')",
            name=op.f("ck_whatsapp_messages_direction"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["whatsapp_orders.id"],
            name=op.f("fk_whatsapp_messages_order_id_whatsapp_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_messages")),
        sa.UniqueConstraint("wamid", name=op.f("uq_whatsapp_messages_wamid")),
    )
    op.create_index(
        op.f("ix_whatsapp_messages_order_id"),
        "whatsapp_messages",
        ["order_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_whatsapp_messages_tenant_id"),
        "whatsapp_messages",
        ["tenant_id"],
        unique=False,
    )
    op.create_index(op.f("ix_whatsapp_messages_wa_id"), "whatsapp_messages", ["wa_id"], unique=False)
    op.create_table(
        "whatsapp_products",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "catalog_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("retailer_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("inventory_product_id", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["catalog_id"],
            ["whatsapp_catalogs.id"],
            name=op.f("fk_whatsapp_products_catalog_id_whatsapp_catalogs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_products")),
        sa.UniqueConstraint(
            "catalog_id",
            "retailer_id",
            name=op.f("uq_whatsapp_products_catalog_id_retailer_id"),
        ),
    )
    op.create_table(
        "whatsapp_order_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "order_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "product_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("product_retailer_id", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("item_price", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["whatsapp_orders.id"],
            name=op.f("fk_whatsapp_order_items_order_id_whatsapp_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["whatsapp_products.id"],
            name=op.f("fk_whatsapp_order_items_product_id_whatsapp_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_order_items")),
        sa.UniqueConstraint(
            "order_id",
            "position",
            name=op.f("uq_whatsapp_order_items_order_id_position"),
        ),
    )
    op.create_index(
        op.f("ix_whatsapp_order_items_product_id"),
        "whatsapp_order_items",
        ["product_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_whatsapp_order_items_product_id"), table_name="whatsapp_order_items")
    op.drop_table("whatsapp_order_items")
    op.drop_table("whatsapp_products")
    op.drop_index(op.f("ix_whatsapp_messages_wa_id"), table_name="whatsapp_messages")
    op.drop_index(op.f("ix_whatsapp_messages_tenant_id"), table_name="whatsapp_messages")
    op.drop_index(op.f("ix_whatsapp_messages_order_id"), table_name="whatsapp_messages")
    op.drop_table("whatsapp_messages")
    op.drop_index(op.f("ix_whatsapp_orders_wa_id"), table_name="whatsapp_orders")
    op.drop_index(op.f("ix_whatsapp_orders_tenant_id"), table_name="whatsapp_orders")
    op.drop_table("whatsapp_orders")
    op.drop_index(
        op.f("ix_whatsapp_message_statuses_tenant_id"),
        table_name="whatsapp_message_statuses",
    )
    op.drop_table("whatsapp_message_statuses")
    op.drop_table("whatsapp_catalogs")
    op.drop_index(
        op.f("ix_whatsapp_business_settings_waba_id"),
        table_name="whatsapp_business_settings",
    )
    op.drop_table("whatsapp_business_settings")
    op.drop_table("whatsapp_analytics")
    op.drop_index(op.f("ix_webhook_events_processed_at"), table_name="webhook_events")
    op.drop_index(op.f("ix_webhook_events_outcome"), table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("tenants")
