"""Talking back to Meta: outbound requests, fetched media files, tenants' outbound settings and tokens, and
what a catalog sync learns about each product.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _settings_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("typing_indicator", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("confirm_orders", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("order_confirmation_template", sa.String(length=512), nullable=True),
        sa.Column("order_confirmation_text", sa.Text(), nullable=True),
        sa.Column("download_media", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=True),
    )


def _product_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("meta_product_id", sa.String(length=64), nullable=True),
        sa.Column("availability", sa.String(length=32), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_upstream_at", sa.DateTime(timezone=True), nullable=True),
    )


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "whatsapp_outbound_requests",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_wamid", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("result_wamid", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_whatsapp_outbound_requests_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_outbound_requests")),
        sa.UniqueConstraint(
            "kind", "subject_wamid", name=op.f("uq_whatsapp_outbound_requests_kind_subject_wamid")
        ),
    )
    op.create_index(
        op.f("ix_whatsapp_outbound_requests_state"), "whatsapp_outbound_requests", ["state"], unique=False
    )
    op.create_index(
        op.f("ix_whatsapp_outbound_requests_tenant_id"),
        "whatsapp_outbound_requests",
        ["tenant_id"],
        unique=False,
    )
    op.create_table(
        "whatsapp_media_files",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("media_id", sa.String(length=128), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["whatsapp_messages.id"],
            name=op.f("fk_whatsapp_media_files_message_id_whatsapp_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_media_files")),
        sa.UniqueConstraint("message_id", name=op.f("uq_whatsapp_media_files_message_id")),
    )
    with op.batch_alter_table("whatsapp_business_settings") as batch:
        for column in _settings_columns():
            batch.add_column(column)
    with op.batch_alter_table("whatsapp_products") as batch:
        for column in _product_columns():
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_products") as batch:
        for column in reversed(_product_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("whatsapp_business_settings") as batch:
        for column in reversed(_settings_columns()):
            batch.drop_column(column.name)
    op.drop_table("whatsapp_media_files")
    op.drop_index(op.f("ix_whatsapp_outbound_requests_tenant_id"), table_name="whatsapp_outbound_requests")
    op.drop_index(op.f("ix_whatsapp_outbound_requests_state"), table_name="whatsapp_outbound_requests")
    op.drop_table("whatsapp_outbound_requests")
