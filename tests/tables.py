"""Whole rows of the tables, in plain comparable form, and the rows an expectation file stands for.

A row is every column of its table except surrogate ids and write times (UNCOMPARED); a foreign key is
given as what it points at (LINKS). An expectation names a row's columns that hold something: every
column it leaves out must hold its default (NULL, or the column's server default), so a column filled
wrongly fails whether or not anybody thought of it.
"""

import argparse
import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
from sqlalchemy import Boolean, Column, Date, DateTime, Numeric, Table, select
from sqlalchemy.orm import Session

from cli.migrate import upgrade
from models import (
    Base,
    WebhookEvent,
    WhatsAppAccountEvent,
    WhatsAppAnalytics,
    WhatsAppBusinessSettings,
    WhatsAppCall,
    WhatsAppCatalog,
    WhatsAppContact,
    WhatsAppMessage,
    WhatsAppMessageStatus,
    WhatsAppOrder,
    WhatsAppOrderItem,
    WhatsAppPricingDaily,
    WhatsAppProduct,
)
from models.db import Database
from tests.conftest import EXPECTED, PAYLOADS, Backend, make_pipeline, seed

Row = dict[str, Any]

TENANT_LABELS = {"100000000000001": "A", "100000000000002": "B"}
# Which surrogate key a row got, and when or by which job it was written: not what it holds. (An account
# event's fingerprint is a digest of what it holds; redelivery tests prove it keys the row.)
UNCOMPARED = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "received_at",
        "last_received_at",
        "processed_at",
        "job_id",
        "fingerprint",
    }
)
# Foreign keys, compared as what they point at: the tenant's label, the order's wamid, the product's
# "<Meta catalog id>/<retailer id>", the contact's business-scoped user id (its phone number without one).
LINKS = {"tenant_id": "tenant", "order_id": "order", "product_id": "product", "contact_id": "contact"}
MESSAGES, STATUSES, ORDERS, ITEMS, EVENTS, ANALYTICS = (
    Base.metadata.tables[model.__tablename__]
    for model in (
        WhatsAppMessage,
        WhatsAppMessageStatus,
        WhatsAppOrder,
        WhatsAppOrderItem,
        WebhookEvent,
        WhatsAppAnalytics,
    )
)
CONTACTS, CALLS, PRICING, ACCOUNT_EVENTS = (
    Base.metadata.tables[model.__tablename__]
    for model in (WhatsAppContact, WhatsAppCall, WhatsAppPricingDaily, WhatsAppAccountEvent)
)
# The tables beside messages, statuses and orders whose rows an expectation lists (absent: none), each
# with the key a row is found by.
ROW_TABLES: dict[str, tuple[Table, Callable[[Row], Any]]] = {
    "contacts": (CONTACTS, lambda r: (r["tenant"], r["user_id"] or r["wa_id"])),
    "calls": (CALLS, lambda r: r["call_id"]),
    "account_events": (
        ACCOUNT_EVENTS,
        lambda r: (r["waba_id"], r["field"], r["event"], _instant(r["event_at"])),
    ),
    "pricing": (PRICING, lambda r: (r["tenant"], str(r["date"]), r["pricing_category"], r["pricing_type"])),
}
# An order's items are compared inside the order, in the order of their position.
ITEM_PARENT = frozenset({"order_id"})


def _instant(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def _columns(table: Table, leave_out: frozenset[str] = frozenset()) -> dict[str, Column[Any]]:
    """The compared columns of a table, by the key a row gives them."""
    return {LINKS.get(c.name, c.name): c for c in table.columns if c.name not in UNCOMPARED | leave_out}


def _labels(session: Session) -> dict[str, dict[Any, Any]]:
    """For each foreign key column: id -> what it is compared as."""
    settings = session.execute(
        select(WhatsAppBusinessSettings.tenant_id, WhatsAppBusinessSettings.phone_number_id)
    )
    products = session.execute(
        select(WhatsAppProduct.id, WhatsAppCatalog.catalog_id, WhatsAppProduct.retailer_id).join(
            WhatsAppCatalog, WhatsAppProduct.catalog_id == WhatsAppCatalog.id
        )
    )
    return {
        "tenant_id": {tenant: TENANT_LABELS.get(number, number) for tenant, number in settings},
        "order_id": dict(session.execute(select(WhatsAppOrder.id, WhatsAppOrder.wamid)).all()),
        "product_id": {pid: f"{catalog}/{retailer}" for pid, catalog, retailer in products},
        "contact_id": {
            cid: user_id or wa_id
            for cid, user_id, wa_id in session.execute(
                select(WhatsAppContact.id, WhatsAppContact.user_id, WhatsAppContact.wa_id)
            )
        },
    }


def _read(session: Session, table: Table, labels: dict[str, dict[Any, Any]]) -> list[Row]:
    rows = []
    for record in session.execute(select(table)).mappings():
        row = {}
        for key, column in _columns(table).items():
            value = record[column.name]
            if column.name in LINKS and value is not None:
                value = labels[column.name][value]
            elif isinstance(column.type, DateTime) and value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)  # SQLite hands timestamps back naive; they are UTC
            row[key] = value
        rows.append(row)
    return rows


def messages(db: Database) -> dict[str, Row]:
    with db.session() as session:
        return {row["wamid"]: row for row in _read(session, MESSAGES, _labels(session))}


def statuses(db: Database) -> dict[tuple[str, str], Row]:
    """The first sighting of each (wamid, status)."""
    with db.session() as session:
        return {(row["wamid"], row["status"]): row for row in _read(session, STATUSES, _labels(session))}


def orders(db: Database) -> dict[str, Row]:
    """Orders by wamid, each with its `items` in position order."""
    with db.session() as session:
        labels = _labels(session)
        items: dict[str, list[Row]] = {}
        for item in sorted(_read(session, ITEMS, labels), key=lambda i: i["position"]):
            items.setdefault(item.pop("order"), []).append(item)
        return {o["wamid"]: {**o, "items": items.get(o["wamid"], [])} for o in _read(session, ORDERS, labels)}


def analytics(db: Database) -> dict[str, dict[str, Row]]:
    """tenant label -> ISO date -> its non-zero counters."""
    result: dict[str, dict[str, Row]] = {}
    with db.session() as session:
        for row in _read(session, ANALYTICS, _labels(session)):
            tenant, day = row.pop("tenant"), row.pop("date")
            counters = {name: value for name, value in row.items() if value}
            if counters:
                result.setdefault(tenant, {})[day.isoformat()] = counters
    return result


def events(db: Database) -> dict[str, Row]:
    """webhook_events rows by sha256."""
    with db.session() as session:
        return {row["sha256"]: row for row in _read(session, EVENTS, _labels(session))}


def outcomes(db: Database) -> dict[str, str | None]:
    return {sha256: row["outcome"] for sha256, row in events(db).items()}


def rows_of(db: Database, name: str) -> dict[Any, Row]:
    """The rows of one of ROW_TABLES by their key; pricing rows a move left at 0 messages are left out."""
    table, key = ROW_TABLES[name]
    with db.session() as session:
        rows = _read(session, table, _labels(session))
    return {key(row): row for row in rows if row.get("messages", 1)}


def snapshot(db: Database) -> dict[str, Any]:
    """Everything a business reads."""
    return {
        "messages": messages(db),
        "statuses": statuses(db),
        "orders": orders(db),
        "analytics": analytics(db),
        **{name: rows_of(db, name) for name in ROW_TABLES},
    }


# What an expectation file stands for.


def _resolve(ref: str) -> Any:
    """A JSON Reference `FILE#/json/pointer` (RFC 6901), FILE relative to the payloads folder."""
    file, _, pointer = ref.partition("#")
    node = json.loads((PAYLOADS / file).read_bytes())
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _default(column: Column[Any]) -> Any:
    """What a column holds when nothing sets it: its server default, else NULL."""
    if column.server_default is None:
        return None
    text = str(getattr(column.server_default, "arg", ""))
    if isinstance(column.type, Boolean):
        return text.lower() in {"true", "1"}
    return column.type.python_type(text)


def _value(column: Column[Any], value: Any) -> Any:
    """An expectation's JSON value as the column's Python value."""
    if isinstance(value, dict) and set(value) == {"$ref"}:
        return _resolve(value["$ref"])
    if value is None or column.name in LINKS:
        return value
    if isinstance(column.type, DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column.type, Date):
        return date.fromisoformat(value)
    if isinstance(column.type, Numeric):
        return Decimal(str(value))
    return value


def expected_row(table: Table, given: Row, leave_out: frozenset[str] = frozenset()) -> Row:
    """The whole row `given` stands for: the columns it names, every other one at its default."""
    columns = _columns(table, leave_out)
    unknown = set(given) - set(columns)
    assert not unknown, f"{sorted(unknown)} are not compared columns of {table.name}"
    return {
        key: _value(column, given[key]) if key in given else _default(column)
        for key, column in columns.items()
    }


def _expected_order(given: Row) -> Row:
    order = {k: v for k, v in given.items() if k != "items"}
    items = [
        expected_row(ITEMS, {"position": position, **item}, ITEM_PARENT)
        for position, item in enumerate(given["items"])
    ]
    return {**expected_row(ORDERS, order), "items": items}


def expected_analytics(expected: dict[str, Any]) -> dict[str, dict[str, Row]]:
    columns = _columns(ANALYTICS)
    return {
        tenant: {
            day: {k: _value(columns[k], v) for k, v in counters.items()} for day, counters in days.items()
        }
        for tenant, days in expected.get("analytics", {}).items()
    }


def expected_snapshot(expected: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for name, (table, key) in ROW_TABLES.items():
        listed = [expected_row(table, r) for r in expected.get(name, [])]
        rows[name] = {key(r): r for r in listed}
    return {
        "messages": {m["wamid"]: expected_row(MESSAGES, m) for m in expected["messages"]},
        "statuses": {(s["wamid"], s["status"]): expected_row(STATUSES, s) for s in expected["statuses"]},
        "orders": {o["wamid"]: _expected_order(o) for o in expected["orders"]},
        "analytics": expected_analytics(expected),
        **rows,
    }


def expected_union(expectations: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows several cases replayed together leave: each case's rows, each day's counters summed."""
    wanted: dict[str, Any] = {name: {} for name in ("messages", "statuses", "orders", *ROW_TABLES)}
    for expected in expectations:
        rows = expected_snapshot(expected)
        for table in ("messages", "statuses", "orders", "calls", "account_events"):
            wanted[table] |= rows[table]
        for key, contact in rows["contacts"].items():
            wanted["contacts"][key] = _same_customer(wanted["contacts"].get(key), contact)
        for key, priced in rows["pricing"].items():
            held = wanted["pricing"].get(key, {"messages": 0})
            wanted["pricing"][key] = {**priced, "messages": priced["messages"] + held["messages"]}
    wanted["analytics"] = _sum_analytics([expected_analytics(e) for e in expectations])
    return wanted


def _same_customer(held: Row | None, seen: Row) -> Row:
    """A customer several cases write to (the hostile cases share one): seen from the first case's first
    event to the last one's last, otherwise as the case that saw them last left them."""
    if held is None:
        return seen
    first, last = sorted((held, seen), key=lambda row: row["last_seen_at"])
    return {**last, "first_seen_at": min(first["first_seen_at"], last["first_seen_at"])}


def _sum_analytics(each: list[dict[str, dict[str, Row]]]) -> dict[str, dict[str, Row]]:
    total: dict[str, dict[str, Counter[str]]] = {}
    for analytics in each:
        for tenant, days in analytics.items():
            for day, counters in days.items():
                total.setdefault(tenant, {}).setdefault(day, Counter()).update(counters)
    return {tenant: {day: dict(c) for day, c in days.items()} for tenant, days in total.items()}


def expected_event(body: bytes, expected: dict[str, Any], times_processed: int = 1) -> Row:
    """The webhook_events row a body processed `times_processed` times leaves."""
    given = {
        "sha256": hashlib.sha256(body).hexdigest(),
        "body": body,
        "times_processed": times_processed,
        "outcome": expected["outcome"],
        "notes": expected.get("notes"),
    }
    return expected_row(EVENTS, given)


def assert_same_rows(stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Two snapshots hold the same rows, column by column.

    (This module is not rewritten by pytest, so the messages say what differs.)
    """
    for table in ("messages", "statuses", "orders", *ROW_TABLES):
        missing, extra = set(wanted[table]) - set(stored[table]), set(stored[table]) - set(wanted[table])
        assert not missing and not extra, (
            f"{table}: rows missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
        for key, row in wanted[table].items():
            got = stored[table][key]
            differ = {column: (got[column], value) for column, value in row.items() if got[column] != value}
            assert not differ, f"{table} {key}, column: (stored, expected): {differ}"
    assert stored["analytics"] == wanted["analytics"], (
        f"analytics {stored['analytics']} != {wanted['analytics']}"
    )


def assert_state(db: Database, expected: dict[str, Any]) -> None:
    """The tables hold exactly the rows an expectation file stands for, column by column."""
    assert_same_rows(snapshot(db), expected_snapshot(expected))


# Drafting an expectation file from what the tables hold, for a new case: check every value by hand.


def _pointers(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _pointers(child, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")


def _ref(value: Any, files: list[str]) -> dict[str, str]:
    """The JSON Reference of the first object in `files` equal to `value`."""
    for file in files:
        for pointer, node in _pointers(json.loads((PAYLOADS / file).read_bytes())):
            if isinstance(node, dict) and node == value:
                return {"$ref": f"{file}#{pointer}"}
    raise LookupError(f"{value!r} is not an object of {files}")


def _draft_value(value: Any, files: list[str]) -> Any:
    if isinstance(value, dict):
        try:
            return _ref(value, files)
        except LookupError:  # stored changed (characters PostgreSQL cannot hold replaced): spelled out
            return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize())
    return value


def _draft_row(table: Table, row: Row, files: list[str], leave_out: frozenset[str] = frozenset()) -> Row:
    """The row's columns that differ from their defaults, its wamid first."""
    columns = _columns(table, leave_out)
    named = {k: v for k, v in row.items() if k in columns and v != _default(columns[k])}
    return {k: _draft_value(v, files) for k, v in sorted(named.items(), key=lambda kv: kv[0] != "wamid")}


def draft(db: Database, files: list[str]) -> dict[str, Any]:
    """The expectation file for what the tables hold after replaying `files` (paths under PAYLOADS)."""
    text = "".join((PAYLOADS / file).read_text() for file in files)

    def first_seen(row: Row) -> int:
        return text.find(f'"{row["wamid"]}"')

    (outcome,) = {row["outcome"] for row in events(db).values()}
    notes = [row["notes"] for row in events(db).values() if row["notes"]]
    return {
        "outcome": outcome,
        **({"notes": notes[0]} if notes else {}),
        "messages": [_draft_row(MESSAGES, r, files) for r in sorted(messages(db).values(), key=first_seen)],
        "statuses": [
            _draft_row(STATUSES, r, files)
            for r in sorted(statuses(db).values(), key=lambda r: (first_seen(r), r["status_at"]))
        ],
        "orders": [
            {
                **_draft_row(ORDERS, o, files),
                "items": [_draft_row(ITEMS, i, files, ITEM_PARENT | {"position"}) for i in o["items"]],
            }
            for o in sorted(orders(db).values(), key=first_seen)
        ],
        "analytics": {
            tenant: {
                day: {k: _draft_value(v, files) for k, v in c.items()} for day, c in sorted(days.items())
            }
            for tenant, days in sorted(analytics(db).items())
        },
        **{
            name: [_draft_row(table, r, files) for _, r in sorted(rows_of(db, name).items(), key=_sortable)]
            for name, (table, _) in ROW_TABLES.items()
            if rows_of(db, name)
        },
    }


def _sortable(item: tuple[Any, Row]) -> str:
    return json.dumps(item[0], default=str)


def case_paths(case: str) -> list[Path]:
    """A case's payload files: `NAME` is payloads/NAME.json, `sequences/NAME` its folder's files in order."""
    folder = PAYLOADS / case
    return sorted(folder.glob("*.json")) if folder.is_dir() else [PAYLOADS / f"{case}.json"]


def main() -> None:
    """`python -m tests.tables CASE...`: replay each case (a payload file's stem, or `sequences/<name>`) into
    SQLite and print the expectation file it drafts, or write it with --write."""
    parser = argparse.ArgumentParser(prog="python -m tests.tables", description=main.__doc__)
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--write", action="store_true", help="write tests/expected/CASE.json")
    args = parser.parse_args()
    for case in args.cases:
        paths = case_paths(case)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'draft.db'}"
            upgrade(url)
            db = Database(url)
            seed(db)
            redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
            make_pipeline(Backend("sqlite", db, redis, "redis://fake")).replay(
                *(p.read_bytes() for p in paths)
            )
            text = json.dumps(
                draft(db, [str(p.relative_to(PAYLOADS)) for p in paths]), indent=2, ensure_ascii=False
            )
            db.dispose()
        if args.write:
            (EXPECTED / f"{case}.json").write_text(text + "\n")
        else:
            print(text)


if __name__ == "__main__":
    main()
