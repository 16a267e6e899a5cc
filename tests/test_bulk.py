"""models/bulk.py: a list of rows in one INSERT stores and returns exactly what SQLAlchemy's own path does."""

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    case,
    select,
)
from sqlalchemy.exc import IntegrityError

from models import bulk
from models.db import Database, upsert

METADATA = MetaData()
PROBE = Table(
    "bulk_probe",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("key", String(40), unique=True, nullable=False),
    Column("body", String(200)),
    Column("doc", JSON),
    Column("flag", Boolean),
    Column("at", DateTime(timezone=True)),
    Column("amount", Numeric(30, 10)),
    Column("blob", LargeBinary),
)
AWKWARD = [
    "100% sure",
    "%(key)s and %s and %%",
    'it\'s "quoted" \\ back',
    "Grüße 👋 ünïcode",
    "",
    None,
]


@pytest.fixture
def db(fresh_url: str) -> Iterator[Database]:
    database = Database(fresh_url)
    METADATA.create_all(database.engine)
    yield database
    database.dispose()


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "key": f"{prefix}-{n}",
            "body": AWKWARD[n % len(AWKWARD)],
            "doc": {"text": AWKWARD[n % len(AWKWARD)], "n": n, "price": Decimal("12.50")},
            "flag": n % 2 == 0,
            "at": datetime(2026, 12, 5, 12, n % 60, tzinfo=UTC),
            "amount": Decimal(n) / 4,
            "blob": bytes(range(256)) * (n % 3) + b"%s\\x00",
        }
        for n in range(count)
    ]


def _stored(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        rows = session.execute(select(PROBE).order_by(PROBE.c.key)).mappings()
        return [
            {**row, "at": row["at"].replace(tzinfo=UTC) if row["at"].tzinfo is None else row["at"]}
            for row in rows
        ]


def test_rows_are_stored_and_returned_exactly(db: Database) -> None:
    statement = PROBE.insert().returning(PROBE.c.key, PROBE.c.body)
    rows = _rows("a", 13)
    with db.session() as session:
        returned = bulk.insert_rows(session, statement, rows)
    assert sorted(tuple(r) for r in returned) == sorted((r["key"], r["body"]) for r in rows)
    stored = _stored(db)
    expected = sorted(rows, key=lambda r: r["key"])
    assert [{k: v for k, v in s.items() if k != "id"} for s in stored] == [
        {**r, "doc": {**r["doc"], "price": 12.5}} for r in expected
    ]


def test_values_are_stored_as_sqlalchemy_itself_stores_them(db: Database) -> None:
    """Every digit of a Decimal a float cannot hold, every byte value: compared with SQLAlchemy's path."""
    exact = {"amount": Decimal("12345678901234567890.1234567891"), "blob": bytes(range(256))}
    row = {**_rows("x", 1)[0], **exact}
    with db.session() as session:
        bulk.insert_rows(session, PROBE.insert().returning(PROBE.c.id), [row])
        session.execute(PROBE.insert(), [{**row, "key": "y"}])
    ours, sqlalchemys = ({k: v for k, v in r.items() if k not in ("id", "key")} for r in _stored(db))
    assert ours == sqlalchemys


def test_what_orjson_refuses_goes_as_json_would_write_it(db: Database) -> None:
    rows = [{**row, "doc": {"n": 2**70}, "at": row["at"].replace(tzinfo=None)} for row in _rows("j", 2)]
    with db.session() as session:
        bulk.insert_rows(session, PROBE.insert().returning(PROBE.c.id), rows)
    stored = _stored(db)
    assert [row["doc"] for row in stored] == [{"n": 2**70}] * 2
    assert [row["at"] for row in stored] == [row["at"].replace(tzinfo=UTC) for row in rows]  # naive: UTC


def test_more_rows_than_one_statement_holds_are_all_written(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", 3)
    with db.session() as session:
        returned = bulk.insert_rows(session, PROBE.insert().returning(PROBE.c.id), _rows("b", 8))
    assert len(returned) == 8
    assert len(_stored(db)) == 8


def test_an_upsert_returns_only_what_it_inserted_and_uses_its_own_constants(db: Database) -> None:
    write = upsert(db.dialect, PROBE)
    # The CASE's literals are bound parameters of the statement itself, not of any row.
    statement = write.on_conflict_do_update(
        index_elements=["key"],
        set_={"body": case({"c-1": "first"}, value=write.excluded.key, else_="other")},
    ).returning(PROBE.c.key)
    with db.session() as session:
        bulk.insert_rows(session, statement, _rows("c", 2))
    with db.session() as session:
        again = bulk.insert_rows(session, statement, _rows("c", 3))
    assert sorted(key for (key,) in again) == ["c-0", "c-1", "c-2"]
    bodies = {row["key"]: row["body"] for row in _stored(db)}
    assert bodies == {"c-0": "other", "c-1": "first", "c-2": AWKWARD[2]}

    nothing = upsert(db.dialect, PROBE).on_conflict_do_nothing(index_elements=["key"]).returning(PROBE.c.key)
    with db.session() as session:
        assert [tuple(r) for r in bulk.insert_rows(session, nothing, _rows("c", 4))] == [("c-3",)]


def test_an_error_shows_the_statement_with_placeholders_not_the_rows(db: Database) -> None:
    rows = [{**row, "body": "a customer's private words"} for row in _rows("e", 2)]
    statement = PROBE.insert().returning(PROBE.c.id)
    with db.session() as session:
        bulk.insert_rows(session, statement, rows)
    with pytest.raises(IntegrityError) as raised, db.session() as session:
        bulk.insert_rows(session, statement, rows)
    assert "INSERT INTO bulk_probe" in str(raised.value)
    assert "private words" not in str(raised.value)


def test_no_rows_sends_nothing(db: Database) -> None:
    with db.session() as session:
        assert bulk.insert_rows(session, PROBE.insert().returning(PROBE.c.id), []) == []


def test_a_statement_without_returning_is_refused_on_postgresql_and_run_as_usual_elsewhere(
    db: Database,
) -> None:
    write = upsert(db.dialect, PROBE)
    statement = write.on_conflict_do_update(index_elements=["key"], set_={"body": write.excluded.body})
    if db.dialect == "postgresql":  # RETURNING is what gives the one-row VALUES to render
        with pytest.raises(ValueError, match="RETURNING"), db.session() as session:
            bulk.insert_rows(session, statement, _rows("d", 1))
        assert _stored(db) == []
    else:  # SQLite: SQLAlchemy's own executemany
        with db.session() as session:
            assert bulk.insert_rows(session, statement, _rows("d", 1)) == []
        assert [row["key"] for row in _stored(db)] == ["d-0"]
