"""Meta's 2026 shapes: contacts by business-scoped id, calls, per-message pricing, account events.

Adds whatsapp_contacts, whatsapp_calls, whatsapp_pricing_daily and whatsapp_account_events; gives
whatsapp_messages its source (live | history), contact, played time, pricing and callback data; gives the
daily analytics messages_played, calls_count and call_seconds. Existing rows keep every value (messages
are `live`, new counters 0); `wahooks reprocess --all` fills the new tables from the stored bodies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 08:24:35.717676
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
COUNTER_COLUMNS = ("messages_played", "calls_count", "call_seconds")


def _message_columns() -> tuple[sa.Column[object], ...]:
    """The columns whatsapp_messages gains (made afresh: a Column belongs to one table)."""
    return (
        sa.Column("source", sa.String(length=16), server_default="live", nullable=False),
        sa.Column("contact_id", ID, nullable=True),
        sa.Column("played_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pricing_model", sa.String(length=32), nullable=True),
        sa.Column("pricing_type", sa.String(length=64), nullable=True),
        sa.Column("priced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("biz_opaque_callback_data", sa.String(length=512), nullable=True),
    )


def _written() -> tuple[sa.Column[object], sa.Column[object]]:
    return (
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def _tenant(table: str, nullable: bool = False) -> tuple[sa.Column[object], sa.ForeignKeyConstraint]:
    return (
        sa.Column("tenant_id", ID, nullable=nullable),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
        ),
    )


def upgrade() -> None:
    op.create_table(
        "whatsapp_contacts",
        sa.Column("id", ID, nullable=False),
        *_tenant("whatsapp_contacts"),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("parent_user_id", sa.String(length=128), nullable=True),
        sa.Column("wa_id", sa.String(length=64), nullable=True),
        sa.Column("previous_user_id", sa.String(length=128), nullable=True),
        sa.Column("previous_wa_id", sa.String(length=64), nullable=True),
        sa.Column("profile_name", sa.String(length=256), nullable=True),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("marketing_opt_out", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("marketing_preference_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("in_address_book", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("address_book_name", sa.String(length=256), nullable=True),
        sa.Column("address_book_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        *_written(),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR wa_id IS NOT NULL", name=op.f("ck_whatsapp_contacts_identified")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_contacts")),
        sa.UniqueConstraint("tenant_id", "user_id", name=op.f("uq_whatsapp_contacts_tenant_id_user_id")),
        sa.UniqueConstraint("tenant_id", "wa_id", name=op.f("uq_whatsapp_contacts_tenant_id_wa_id")),
    )
    for column in ("previous_user_id", "previous_wa_id"):
        op.create_index(op.f(f"ix_whatsapp_contacts_{column}"), "whatsapp_contacts", [column], unique=False)
    op.create_table(
        "whatsapp_calls",
        sa.Column("id", ID, nullable=False),
        *_tenant("whatsapp_calls"),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("contact_id", ID, nullable=True),
        sa.Column("direction", sa.String(length=32), nullable=True),
        sa.Column("from_number", sa.String(length=64), nullable=True),
        sa.Column("to_number", sa.String(length=64), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("biz_opaque_callback_data", sa.String(length=512), nullable=True),
        *_written(),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["whatsapp_contacts.id"],
            name=op.f("fk_whatsapp_calls_contact_id_whatsapp_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_whatsapp_calls_call_id")),
    )
    for column in ("contact_id", "tenant_id"):
        op.create_index(op.f(f"ix_whatsapp_calls_{column}"), "whatsapp_calls", [column], unique=False)
    op.create_table(
        "whatsapp_pricing_daily",
        sa.Column("id", ID, nullable=False),
        *_tenant("whatsapp_pricing_daily"),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("pricing_category", sa.String(length=64), nullable=False),
        sa.Column("pricing_type", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.Integer(), server_default="0", nullable=False),
        *_written(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_pricing_daily")),
        sa.UniqueConstraint(
            "tenant_id",
            "date",
            "pricing_category",
            "pricing_type",
            name=op.f("uq_whatsapp_pricing_daily_tenant_id_date_pricing_category_pricing_type"),
        ),
    )
    op.create_table(
        "whatsapp_account_events",
        sa.Column("id", ID, nullable=False),
        *_tenant("whatsapp_account_events", nullable=True),
        sa.Column("waba_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_account_events")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_whatsapp_account_events_fingerprint")),
    )
    for column in ("tenant_id", "waba_id"):
        op.create_index(
            op.f(f"ix_whatsapp_account_events_{column}"), "whatsapp_account_events", [column], unique=False
        )
    # Batch mode: SQLite adds a foreign key only by rebuilding the table (every row copied as is).
    with op.batch_alter_table("whatsapp_analytics") as batch:
        for counter in COUNTER_COLUMNS:
            batch.add_column(sa.Column(counter, sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("whatsapp_messages") as batch:
        for column in _message_columns():
            batch.add_column(column)
        batch.create_index(op.f("ix_whatsapp_messages_contact_id"), ["contact_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_whatsapp_messages_contact_id_whatsapp_contacts"),
            "whatsapp_contacts",
            ["contact_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.drop_constraint(op.f("fk_whatsapp_messages_contact_id_whatsapp_contacts"), type_="foreignkey")
        batch.drop_index(op.f("ix_whatsapp_messages_contact_id"))
        for column in reversed(_message_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("whatsapp_analytics") as batch:
        for counter in reversed(COUNTER_COLUMNS):
            batch.drop_column(counter)
    for column in ("tenant_id", "waba_id"):
        op.drop_index(op.f(f"ix_whatsapp_account_events_{column}"), table_name="whatsapp_account_events")
    op.drop_table("whatsapp_account_events")
    op.drop_table("whatsapp_pricing_daily")
    for column in ("contact_id", "tenant_id"):
        op.drop_index(op.f(f"ix_whatsapp_calls_{column}"), table_name="whatsapp_calls")
    op.drop_table("whatsapp_calls")
    for column in ("previous_user_id", "previous_wa_id"):
        op.drop_index(op.f(f"ix_whatsapp_contacts_{column}"), table_name="whatsapp_contacts")
    op.drop_table("whatsapp_contacts")
