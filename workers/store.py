"""Write routed updates with one bulk statement per kind, whatever number of bodies they came from.

The store decides nothing about counting: it reports what its statements really inserted (`Inserted`),
and workers/analytics.py turns that into counters. Every statement takes its rows deduplicated and in
key order, so concurrent transactions lock rows in the same order and cannot deadlock. The statements are
built once per dialect and reused: building an upsert costs more than running it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import Case, ColumnElement, Insert, Select, and_, bindparam, case, func, select
from sqlalchemy.orm import Session

from models import (
    INBOUND,
    OUTBOUND,
    WhatsAppCatalog,
    WhatsAppMessage,
    WhatsAppMessageStatus,
    WhatsAppOrder,
    WhatsAppOrderItem,
    WhatsAppProduct,
)
from models.db import dialect_of, upsert
from models.limits import row_problems
from models.statuses import SENT, STATUS_RULES, STATUSES
from workers.events import Message, Order, Status

RECEIVED = "received"
STATUS_RANK = {rule.status: rule.rank for rule in STATUS_RULES}
# Filled in by the first status seen with a value, never overwritten by a later one.
FIRST_VALUE_COLUMNS = (
    *(rule.time_column for rule in STATUS_RULES),
    "wa_id",
    "user_id",
    "contact_name",
    "failure_code",
    "failure_title",
    "failure_details",
    "conversation_id",
    "pricing_category",
)
ECHO_FILL_COLUMNS = (
    "message_type",
    "wa_id",
    "user_id",
    "body",
    "message_at",
    "media_id",
    "media_mime_type",
    "raw",
)
MESSAGES = WhatsAppMessage.__table__
ORDERS = WhatsAppOrder.__table__
SIGHTINGS = WhatsAppMessageStatus.__table__


@dataclass
class Routed:
    """Every update of a batch of bodies that belongs to a known tenant."""

    messages: list[tuple[int, Message]] = field(default_factory=list)
    statuses: list[tuple[int, Status]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages) + len(self.statuses)


@dataclass(frozen=True)
class NewOrder:
    tenant_id: int
    ordered_at: datetime
    total: Decimal


@dataclass
class Inserted:
    """What the statements of one transaction really inserted: the only rows that may move a counter."""

    messages: list[tuple[int, datetime]] = field(default_factory=list)  # (tenant, message time) inbound
    sightings: list[tuple[int, str, datetime]] = field(default_factory=list)  # (tenant, status, status time)
    orders: list[NewOrder] = field(default_factory=list)


@dataclass(frozen=True)
class Statements:
    inbound: Insert
    echoes: Insert
    orders: Insert
    order_items: Insert
    products: Select[int, str, str, int]
    sightings: Insert
    advance: Insert


def _rank(column: ColumnElement[str]) -> Case[int]:
    return case(STATUS_RANK, value=column, else_=0)


@cache
def statements(dialect: str) -> Statements:
    echoes = upsert(dialect, MESSAGES)
    advance = upsert(dialect, MESSAGES)
    moves_forward = and_(
        MESSAGES.c.direction == OUTBOUND, _rank(advance.excluded.status) > _rank(MESSAGES.c.status)
    )
    return Statements(
        inbound=upsert(dialect, MESSAGES)
        .on_conflict_do_nothing(index_elements=["wamid"])
        .returning(MESSAGES.c.tenant_id, MESSAGES.c.message_at),
        # Echoes may arrive after a status made a bare row for their wamid: fill in what it lacks.
        echoes=echoes.on_conflict_do_update(
            index_elements=["wamid"],
            set_={c: func.coalesce(MESSAGES.c[c], echoes.excluded[c]) for c in ECHO_FILL_COLUMNS},
        ).returning(MESSAGES.c.id),
        orders=upsert(dialect, ORDERS)
        .on_conflict_do_nothing(index_elements=["wamid"])
        .returning(ORDERS.c.wamid, ORDERS.c.id),
        # RETURNING makes SQLAlchemy send all rows in one multi-row INSERT rather than one per row.
        order_items=WhatsAppOrderItem.__table__.insert().returning(WhatsAppOrderItem.__table__.c.id),
        products=select(
            WhatsAppCatalog.tenant_id,
            WhatsAppCatalog.catalog_id,
            WhatsAppProduct.retailer_id,
            WhatsAppProduct.id,
        )
        .join(WhatsAppProduct, WhatsAppProduct.catalog_id == WhatsAppCatalog.id)
        .where(WhatsAppCatalog.tenant_id.in_(bindparam("tenants", expanding=True)))
        .where(WhatsAppCatalog.catalog_id.in_(bindparam("catalogs", expanding=True))),
        sightings=upsert(dialect, SIGHTINGS)
        .on_conflict_do_nothing(index_elements=["wamid", "status"])
        .returning(SIGHTINGS.c.tenant_id, SIGHTINGS.c.status, SIGHTINGS.c.status_at),
        advance=advance.on_conflict_do_update(
            index_elements=["wamid"],
            set_={
                "status": case((moves_forward, advance.excluded.status), else_=MESSAGES.c.status),
                **{c: func.coalesce(MESSAGES.c[c], advance.excluded[c]) for c in FIRST_VALUE_COLUMNS},
                "updated_at": func.now(),
            },
        ).returning(MESSAGES.c.id),
    )


def store(session: Session, routed: Routed) -> Inserted:
    """Write every routed update; report which rows were new."""
    sql = statements(dialect_of(session))
    inserted = Inserted()
    inbound = _by_wamid((t, m) for t, m in routed.messages if m.direction == INBOUND)
    echoes = _by_wamid((t, m) for t, m in routed.messages if m.direction == OUTBOUND)
    # Orders first, so that a new order message is inserted already pointing at its order.
    order_ids = _insert_orders(session, sql, inbound, inserted)
    if inbound:
        rows = [_message_row(t, m, RECEIVED, order_ids.get(m.wamid)) for t, m in inbound]
        inserted.messages = [(t, _utc(at)) for t, at in session.execute(sql.inbound, rows)]
    if echoes:
        session.execute(sql.echoes, [_message_row(t, m, SENT) for t, m in echoes])
    echo_statuses = [(t, _echo_status(m)) for t, m in echoes]
    statuses = [(t, s) for t, s in routed.statuses + echo_statuses if s.status in STATUSES]
    if statuses:
        _record_first_sightings(session, sql, statuses, inserted)
        _advance_messages(session, sql, statuses)
    return inserted


def message_problems(m: Message) -> list[str]:
    """What in this message its columns cannot hold ('column: why'); empty when it can be stored."""
    problems = row_problems(MESSAGES, _message_row(0, m, RECEIVED))
    if m.content.order is not None:
        problems += row_problems(ORDERS, _order_row(0, m, m.content.order))
    if m.direction == OUTBOUND:  # an echo also records its `sent` sighting
        problems += row_problems(SIGHTINGS, _sighting_row(0, _echo_status(m)))
    return problems


def _echo_status(m: Message) -> Status:
    """An echo is a message the business sent: it counts as `sent` exactly like a sent status."""
    return Status(m.wamid, SENT, m.timestamp, m.wa_id, m.user_id, m.contact_name)


def status_problems(s: Status) -> list[str]:
    """What in this status its columns cannot hold; a status we do not store (unknown name) holds nothing."""
    if s.status not in STATUSES:
        return []
    return row_problems(SIGHTINGS, _sighting_row(0, s)) + row_problems(MESSAGES, _status_values(s))


def _by_wamid(messages: Iterable[tuple[int, Message]]) -> list[tuple[int, Message]]:
    """The first of each wamid, sorted by wamid."""
    first: dict[str, tuple[int, Message]] = {}
    for tenant_id, message in messages:
        first.setdefault(message.wamid, (tenant_id, message))
    return [first[w] for w in sorted(first)]


def _message_row(tenant_id: int, m: Message, status: str, order_id: int | None = None) -> dict[str, object]:
    c = m.content
    return {
        "tenant_id": tenant_id,
        "wamid": m.wamid,
        "direction": m.direction,
        "message_type": m.message_type,
        "wa_id": m.wa_id,
        "user_id": m.user_id,
        "contact_name": m.contact_name,
        "body": c.body,
        "status": status,
        "order_id": order_id,
        "message_at": m.timestamp,
        "sent_at": m.timestamp if status == SENT else None,
        "context_wamid": m.context_wamid,
        "target_wamid": c.target_wamid,
        "forwarded": m.forwarded,
        "media_id": c.media.id if c.media else None,
        "media_mime_type": c.media.mime_type if c.media else None,
        "media_filename": c.media.filename if c.media else None,
        "latitude": c.latitude,
        "longitude": c.longitude,
        "failure_code": c.error_code,
        "failure_title": c.error_title,
        "failure_details": c.error_details,
        "raw": m.raw,
    }


def _insert_orders(
    session: Session, sql: Statements, inbound: list[tuple[int, Message]], inserted: Inserted
) -> dict[str, int]:
    """One order per order message, its items linked to the tenant's products where we know them.

    Returns the ids of the orders this transaction inserted, by wamid; an order already stored is left
    alone, and so is its message (inserted with it).
    """
    orders = [(t, m, m.content.order) for t, m in inbound if m.content.order is not None]
    if not orders:
        return {}
    rows = [_order_row(t, m, o) for t, m, o in orders]
    order_ids: dict[str, int] = {wamid: oid for wamid, oid in session.execute(sql.orders, rows)}
    if not order_ids:
        return {}
    products = _product_ids(session, sql, [(t, o.catalog_id) for t, _, o in orders])
    items = []
    for tenant_id, message, order in orders:
        if message.wamid not in order_ids:
            continue
        inserted.orders.append(NewOrder(tenant_id, message.timestamp, order.total))
        items += [
            {
                "order_id": order_ids[message.wamid],
                "position": item.position,
                "product_id": products.get((tenant_id, order.catalog_id, item.product_retailer_id)),
                "product_retailer_id": item.product_retailer_id,
                "quantity": item.quantity,
                "item_price": item.item_price,
                "currency": item.currency,
            }
            for item in order.items
        ]
    if items:
        session.execute(sql.order_items, items)
    return order_ids


def _order_row(tenant_id: int, m: Message, order: Order) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "wamid": m.wamid,
        "wa_id": m.wa_id,
        "catalog_id": order.catalog_id,
        "total_amount": order.total,
        "currency": order.currency,
        "note": order.note,
        "ordered_at": m.timestamp,
        "raw": m.raw.get("order"),
    }


def _product_ids(
    session: Session, sql: Statements, catalogs: list[tuple[int, str | None]]
) -> dict[tuple[int, str | None, str], int]:
    """(tenant, Meta catalog id, retailer id) -> product id, for the catalogs these orders name."""
    wanted = {(t, c) for t, c in catalogs if c}
    if not wanted:
        return {}
    params = {"tenants": sorted({t for t, _ in wanted}), "catalogs": sorted({c for _, c in wanted})}
    return {(t, c, r): pid for t, c, r, pid in session.execute(sql.products, params)}


def _record_first_sightings(
    session: Session, sql: Statements, statuses: list[tuple[int, Status]], inserted: Inserted
) -> None:
    """A (wamid, status) row is inserted once ever, with the earliest time this batch saw it."""
    first: dict[tuple[str, str], dict[str, object]] = {}
    for tenant_id, s in sorted(statuses, key=lambda ts: ts[1].timestamp, reverse=True):
        first[(s.wamid, s.status)] = _sighting_row(tenant_id, s)
    rows = session.execute(sql.sightings, [first[k] for k in sorted(first)])
    inserted.sightings = [(tenant_id, status, _utc(at)) for tenant_id, status, at in rows]


def _sighting_row(tenant_id: int, s: Status) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "wamid": s.wamid,
        "status": s.status,
        "status_at": s.timestamp,
        "recipient_id": s.recipient_id or s.recipient_user_id,
        "raw": s.raw,
    }


def _advance_messages(session: Session, sql: Statements, statuses: list[tuple[int, Status]]) -> None:
    """Upsert each outbound message once, moving its status forward only, whatever the arrival order."""
    rows: dict[str, dict[str, object]] = {}
    for tenant_id, s in sorted(statuses, key=lambda ts: ts[1].timestamp):
        row = rows.setdefault(s.wamid, _bare_outbound_row(tenant_id, s.wamid))
        if STATUS_RANK[s.status] > STATUS_RANK.get(str(row["status"]), 0):
            row["status"] = s.status
        for column, value in _status_values(s).items():
            row[column] = row[column] or value
    session.execute(sql.advance, [rows[w] for w in sorted(rows)])


def _status_values(s: Status) -> dict[str, object]:
    """What a status tells about its message: each column filled by the first status that has it."""
    return {
        STATUSES[s.status].time_column: s.timestamp,
        "wa_id": s.recipient_id,
        "user_id": s.recipient_user_id,
        "contact_name": s.contact_name,
        "failure_code": s.error_code,
        "failure_title": s.error_title,
        "failure_details": s.error_details,
        "conversation_id": s.conversation_id,
        "pricing_category": s.pricing_category,
    }


def _bare_outbound_row(tenant_id: int, wamid: str) -> dict[str, object]:
    """The row a status makes for a message whose send we never saw."""
    return {
        "tenant_id": tenant_id,
        "wamid": wamid,
        "direction": OUTBOUND,
        "status": "",
        **dict.fromkeys(FIRST_VALUE_COLUMNS),
    }


def _utc(value: datetime) -> datetime:
    """In UTC, whatever the session's time zone; SQLite hands timestamps back naive, written in UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
