"""Webhook bodies compressed with lz4 instead of PostgreSQL's default pglz.

Every body is stored whole and most exceed the 2 kB past which PostgreSQL compresses a value: lz4
compresses them in about two thirds of pglz's CPU time, to within 4% of the size (bench/README.md).
Only bodies written from now on are affected; older ones stay readable as they are. A server built
without lz4 (or older than PostgreSQL 14) keeps pglz, and SQLite stores bytes as they are.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One statement that decides on the server, so that `wahooks migrate --sql` prints what it runs.
_SET_COMPRESSION = """
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings
             WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE webhook_events ALTER COLUMN body SET COMPRESSION {method};
  END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_SET_COMPRESSION.format(method="lz4"))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(_SET_COMPRESSION.format(method="default"))
