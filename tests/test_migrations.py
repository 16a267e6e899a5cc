"""Alembic migrations: they round-trip, match the models exactly, and carry the keys the code relies on."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Float, Inspector, Numeric, inspect, text

from models import Base
from models.db import SCHEMA_HEAD, Database, SchemaOutOfDate, alembic_config, make_engine
from tests.processes import PROJECT_ROOT

TABLES = set(Base.metadata.tables)


@pytest.fixture
def engine(fresh_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_url)
    yield engine
    engine.dispose()


def migrate(url: str, revision: str, downgrade: bool = False) -> None:
    (command.downgrade if downgrade else command.upgrade)(alembic_config(url), revision)


@pytest.fixture
def migrated(fresh_url: str, engine: Engine) -> Engine:
    migrate(fresh_url, "head")
    return engine


@pytest.fixture
def inspector(migrated: Engine) -> Iterator[Inspector]:
    with migrated.connect() as connection:
        yield inspect(connection)


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_upgrade_downgrade_upgrade_round_trips(fresh_url: str, engine: Engine) -> None:
    migrate(fresh_url, "head")
    assert table_names(engine) == TABLES | {"alembic_version"}
    migrate(fresh_url, "base", downgrade=True)
    assert table_names(engine) == {"alembic_version"}
    migrate(fresh_url, "head")
    assert table_names(engine) == TABLES | {"alembic_version"}


FIRST_REVISION = "0001"
OLD_ROWS = {
    "tenants": "INSERT INTO tenants (id, name) VALUES (1, 'Acme')",
    "whatsapp_messages": "INSERT INTO whatsapp_messages"
    " (tenant_id, wamid, direction, status, pricing_category)"
    " VALUES (1, 'wamid.OLD-1', 'outbound', 'read', 'utility')",
    "whatsapp_analytics": "INSERT INTO whatsapp_analytics (tenant_id, date, messages_received, messages_read)"
    " VALUES (1, '2026-11-01', 3, 1)",
}


def _old_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """What the first revision's rows hold, in the first revision's columns."""
    queries = {
        "tenants": "SELECT id, name FROM tenants",
        "whatsapp_messages": "SELECT tenant_id, wamid, direction, status, pricing_category"
        " FROM whatsapp_messages",
        "whatsapp_analytics": "SELECT tenant_id, messages_received, messages_read FROM whatsapp_analytics",
    }
    with engine.connect() as connection:
        return {table: [tuple(r) for r in connection.execute(text(q))] for table, q in queries.items()}


def test_rows_of_the_first_revision_survive_every_later_one_both_ways(fresh_url: str, engine: Engine) -> None:
    migrate(fresh_url, FIRST_REVISION)
    with engine.begin() as connection:
        for statement in OLD_ROWS.values():
            connection.execute(text(statement))
    before = _old_rows(engine)
    assert all(before.values())
    migrate(fresh_url, "head")
    assert _old_rows(engine) == before
    with engine.connect() as connection:
        assert connection.execute(text("SELECT source, contact_id FROM whatsapp_messages")).all() == [
            ("live", None)
        ]
        counters = "SELECT messages_played, calls_count, call_seconds FROM whatsapp_analytics"
        assert connection.execute(text(counters)).all() == [(0, 0, 0)]
    migrate(fresh_url, FIRST_REVISION, downgrade=True)
    assert _old_rows(engine) == before
    migrate(fresh_url, "head")
    assert _old_rows(engine) == before


def test_upgrading_twice_changes_nothing(fresh_url: str, migrated: Engine) -> None:
    migrate(fresh_url, "head")
    assert table_names(migrated) == TABLES | {"alembic_version"}


def test_the_migrated_schema_is_exactly_the_models(migrated: Engine) -> None:
    with migrated.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def unique_keys(inspector: Inspector, table: str) -> set[tuple[str, ...]]:
    constraints = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
    indexes = {tuple(i["column_names"]) for i in inspector.get_indexes(table) if i["unique"]}
    return constraints | indexes


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("whatsapp_messages", ("wamid",)),
        ("whatsapp_analytics", ("tenant_id", "date")),
        ("whatsapp_business_settings", ("tenant_id",)),
        ("whatsapp_business_settings", ("phone_number_id",)),
        ("whatsapp_products", ("catalog_id", "retailer_id")),
        ("whatsapp_catalogs", ("tenant_id", "catalog_id")),
        ("whatsapp_message_statuses", ("wamid", "status")),
        ("webhook_events", ("sha256",)),
        ("whatsapp_orders", ("wamid",)),
        ("whatsapp_order_items", ("order_id", "position")),
        ("whatsapp_contacts", ("tenant_id", "user_id")),
        ("whatsapp_contacts", ("tenant_id", "wa_id")),
        ("whatsapp_calls", ("call_id",)),
        ("whatsapp_pricing_daily", ("tenant_id", "date", "pricing_category", "pricing_type")),
        ("whatsapp_account_events", ("fingerprint",)),
    ],
)
def test_the_keys_upserts_rely_on_are_unique(
    inspector: Inspector, table: str, columns: tuple[str, ...]
) -> None:
    assert columns in unique_keys(inspector, table)


def test_every_foreign_key_leads_an_index(inspector: Inspector) -> None:
    """Deleting a tenant, order or product cascades without a full scan of the referencing table."""
    unindexed = []
    for table in inspector.get_table_names():
        leading = {i["column_names"][0] for i in inspector.get_indexes(table)}
        leading |= {u["column_names"][0] for u in inspector.get_unique_constraints(table)}
        for fk in inspector.get_foreign_keys(table):
            if fk["constrained_columns"][0] not in leading:
                unindexed.append(f"{table}.{','.join(fk['constrained_columns'])}")
    assert unindexed == []
    assert any(inspector.get_foreign_keys(t) for t in inspector.get_table_names())


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("whatsapp_orders", "total_amount"),
        ("whatsapp_order_items", "item_price"),
        ("whatsapp_products", "price"),
        ("whatsapp_analytics", "order_revenue"),
    ],
)
def test_money_is_an_exact_decimal(inspector: Inspector, table: str, column: str) -> None:
    (money,) = (c["type"] for c in inspector.get_columns(table) if c["name"] == column)
    assert isinstance(money, Numeric)
    assert not isinstance(money, Float)
    assert (money.precision, money.scale) == (18, 4)


def test_the_sql_can_be_printed_without_a_database() -> None:
    env = dict(os.environ, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "upgrade", "head", "--sql"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE whatsapp_messages" in result.stdout
    assert "INSERT INTO alembic_version" in result.stdout


@pytest.fixture
def database(fresh_url: str) -> Iterator[Database]:
    db = Database(fresh_url)
    yield db
    db.dispose()


def test_an_empty_database_is_out_of_date_and_names_the_command(database: Database) -> None:
    with pytest.raises(SchemaOutOfDate, match="`wahooks migrate`"):
        database.check_schema()


def test_a_downgraded_database_is_out_of_date(fresh_url: str, migrated: Engine, database: Database) -> None:
    migrate(fresh_url, "base", downgrade=True)
    with pytest.raises(SchemaOutOfDate, match="`wahooks migrate`"):
        database.check_schema()


def test_a_migrated_database_passes_the_schema_check(migrated: Engine, database: Database) -> None:
    database.check_schema()


def test_the_schema_check_expects_alembics_head() -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head == SCHEMA_HEAD, f"a new migration: set models.db.SCHEMA_HEAD to {head}"


def test_a_worker_starts_without_loading_alembic_or_an_http_client() -> None:
    """Every worker start would pay for them (a tenth of a second, then 40 ms, beside RQ's own fifth)."""
    modules = "cli.main, outbound.config, outbound.hook, workers.jobs, workers.runner"
    probe = f"import sys, {modules}; print(sorted({{'alembic', 'requests'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def body_compression(engine: Engine) -> str:
    """How PostgreSQL compresses webhook_events.body: '' for its default (pglz), 'l' for lz4."""
    query = (
        "SELECT attcompression FROM pg_attribute"
        " WHERE attrelid = 'webhook_events'::regclass AND attname = 'body'"
    )
    with engine.connect() as connection:
        return str(connection.execute(text(query)).scalar_one())


@pytest.mark.parametrize("fresh_url", ["postgres"], indirect=True)
def test_bodies_are_compressed_with_lz4_until_downgraded(fresh_url: str, migrated: Engine) -> None:
    with migrated.connect() as connection:
        lz4 = connection.execute(
            text("SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar_one()
    assert body_compression(migrated) == ("l" if lz4 else "")
    migrate(fresh_url, "0004", downgrade=True)
    assert body_compression(migrated) == ""
