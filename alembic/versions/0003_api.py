"""The REST API: tenants' API keys (hashed), soft-deleted catalogs and products, the back office's order
statuses (checked) and the indexes its order listing pages through (in place of 0001's tenant_id, wa_id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# models/orders.py ORDER_STATUSES, as of this revision.
ORDER_STATUSES = ("received", "confirmed", "shipped", "delivered", "cancelled")
SOFT_DELETED = ("whatsapp_catalogs", "whatsapp_products")
ORDER_INDEXES = (
    ("tenant_id", "ordered_at", "id"),
    ("tenant_id", "status", "ordered_at", "id"),
    ("tenant_id", "wa_id", "ordered_at", "id"),
)
# The single-column indexes of 0001 that the composite ones above replace (their leading columns serve the
# same lookups; nothing looks orders up by wa_id across tenants).
REPLACED = (("ix_whatsapp_orders_tenant_id", "tenant_id"), ("ix_whatsapp_orders_wa_id", "wa_id"))


def _order_index(columns: tuple[str, ...]) -> str:
    return f"ix_whatsapp_orders_{'_'.join(columns)}"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"], unique=False)
    for table in SOFT_DELETED:
        op.add_column(table, sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    statuses = ", ".join(f"'{status}'" for status in ORDER_STATUSES)
    # Batch mode: SQLite adds a CHECK constraint only by rebuilding the table (PostgreSQL alters it in place).
    with op.batch_alter_table("whatsapp_orders") as batch:
        batch.create_check_constraint(op.f("ck_whatsapp_orders_status"), f"status IN ({statuses})")
    for name, _column in REPLACED:
        op.drop_index(op.f(name), table_name="whatsapp_orders")
    for columns in ORDER_INDEXES:
        op.create_index(op.f(_order_index(columns)), "whatsapp_orders", list(columns), unique=False)


def downgrade() -> None:
    for columns in reversed(ORDER_INDEXES):
        op.drop_index(op.f(_order_index(columns)), table_name="whatsapp_orders")
    for name, column in REPLACED:
        op.create_index(op.f(name), "whatsapp_orders", [column], unique=False)
    with op.batch_alter_table("whatsapp_orders") as batch:
        batch.drop_constraint(op.f("ck_whatsapp_orders_status"), type_="check")
    for table in reversed(SOFT_DELETED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_at")
    op.drop_index(op.f("ix_api_keys_tenant_id"), table_name="api_keys")
    op.drop_table("api_keys")
