"""Write routed updates with one bulk statement per kind, whatever number of bodies they came from.

The store decides nothing about counting: it reports what its statements really inserted (`Inserted`),
and workers/analytics.py turns that into counters. Every statement takes its rows deduplicated and in
key order, so concurrent transactions lock rows in the same order and cannot deadlock. The statements are
built once per dialect and reused: building an upsert costs more than running it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Case,
    ColumnElement,
    Insert,
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from models import (
    HISTORY,
    INBOUND,
    LIVE,
    OUTBOUND,
    WhatsAppAccountEvent,
    WhatsAppCatalog,
    WhatsAppMessage,
    WhatsAppMessageStatus,
    WhatsAppOrder,
    WhatsAppOrderItem,
    WhatsAppProduct,
)
from models.bulk import insert_rows
from models.db import as_utc, dialect_of, upsert
from models.limits import row_problems
from models.statuses import SENT, STATUS_RULES, STATUSES
from workers.calls import CallDay, store_calls
from workers.contacts import ContactIds, ContactUpdates
from workers.events import AccountEvent, CallEvent, Message, Order, Status

RECEIVED = "received"
STATUS_RANK = {rule.status: rule.rank for rule in STATUS_RULES}
# Filled in by the first status seen with a value, never overwritten by a later one.
FIRST_VALUE_COLUMNS = (
    *(rule.time_column for rule in STATUS_RULES),
    "wa_id",
    "user_id",
    "contact_name",
    "contact_id",
    "failure_code",
    "failure_title",
    "failure_details",
    "conversation_id",
    "biz_opaque_callback_data",
)
ECHO_FILL_COLUMNS = (
    "message_type",
    "wa_id",
    "user_id",
    "contact_id",
    "body",
    "message_at",
    "media_id",
    "media_mime_type",
    "raw",
)
# Meta sends a history media message twice: first as a `media_placeholder` in its thread, then with its
# contents. The second fills in what the first lacked, and gives the row its real type and JSON.
PLACEHOLDER = "media_placeholder"
HISTORY_FILL_COLUMNS = ("body", "media_id", "media_mime_type", "media_filename", "contact_id", "wa_id")
HISTORY_REPLACED_COLUMNS = ("message_type", "raw")
# A message's pricing: that of the earliest status carrying any (pricing_type "" when Meta gives none).
PRICING_COLUMNS = ("pricing_category", "pricing_type", "pricing_model", "priced_at")
MESSAGES = WhatsAppMessage.__table__
ORDERS = WhatsAppOrder.__table__
SIGHTINGS = WhatsAppMessageStatus.__table__
ACCOUNT_EVENTS = WhatsAppAccountEvent.__table__


@dataclass
class Routed:
    """Every update of a batch of bodies that belongs to a known tenant (account events: or to none)."""

    messages: list[tuple[int, Message]] = field(default_factory=list)
    statuses: list[tuple[int, Status]] = field(default_factory=list)
    contacts: ContactUpdates = field(default_factory=ContactUpdates)
    calls: list[tuple[int, CallEvent]] = field(default_factory=list)
    account_events: list[tuple[int | None, AccountEvent]] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.messages)
            + len(self.statuses)
            + len(self.calls)
            + len(self.account_events)
            + (1 if self.contacts else 0)
        )


@dataclass(frozen=True)
class NewOrder:
    tenant_id: int
    ordered_at: datetime
    total: Decimal


@dataclass
class Inserted:
    """What the statements of one transaction really inserted: the only rows that may move a counter."""

    messages: list[tuple[int, datetime]] = field(default_factory=list)  # (tenant, message time) inbound
    # (tenant, wamid) of the same inbound messages: what outbound/hook.py plans Graph API calls for.
    new_inbound: list[tuple[int, str]] = field(default_factory=list)
    sightings: list[tuple[int, str, datetime]] = field(default_factory=list)  # (tenant, status, status time)
    orders: list[NewOrder] = field(default_factory=list)
    # (tenant, day, category, type, +1 | -1): a message priced, or its pricing moved to an earlier status
    pricing: list[tuple[int, date, str, str, int]] = field(default_factory=list)
    calls: list[CallDay] = field(default_factory=list)  # calls whose end this transaction first recorded


@dataclass(frozen=True)
class Statements:
    inbound: Insert
    echoes: Insert
    orders: Insert
    order_items: Insert
    products: Select[int, str, str, int]
    sightings: Insert
    advance: Insert
    # True when the advance reports which rows it inserted: those take their pricing as they go in.
    advance_prices_new_rows: bool
    link_contacts: Insert
    history: Insert
    pricing_held: Select[Any]
    pricing: Insert
    account_events: Insert


def _rank(column: ColumnElement[str]) -> Case[int]:
    return case(STATUS_RANK, value=column, else_=0)


def _created(dialect: str) -> ColumnElement[bool]:
    """In an upsert's RETURNING, whether the statement inserted the row (rather than updated it).

    PostgreSQL: an updated row's new version carries the lock its update took (xmax), an inserted row's
    none. SQLite cannot tell: every row counts as updated there, and is priced the long way.
    """
    return literal_column("xmax = 0", Boolean) if dialect == "postgresql" else false()


@cache
def statements(dialect: str) -> Statements:
    echoes = upsert(dialect, MESSAGES)
    advance = upsert(dialect, MESSAGES)
    link, history, pricing = upsert(dialect, MESSAGES), upsert(dialect, MESSAGES), upsert(dialect, MESSAGES)
    placeholder = MESSAGES.c.message_type == PLACEHOLDER
    moves_forward = and_(
        MESSAGES.c.direction == OUTBOUND, _rank(advance.excluded.status) > _rank(MESSAGES.c.status)
    )
    return Statements(
        inbound=upsert(dialect, MESSAGES)
        .on_conflict_do_nothing(index_elements=["wamid"])
        .returning(MESSAGES.c.tenant_id, MESSAGES.c.message_at, MESSAGES.c.wamid),
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
            },  # never the pricing: a row it inserts takes the batch's, one it updates is priced after
        ).returning(MESSAGES.c.wamid, MESSAGES.c.tenant_id, _created(dialect)),
        advance_prices_new_rows=dialect == "postgresql",
        # A message stored before its contact was known (`wahooks reprocess` back-fills them).
        link_contacts=link.on_conflict_do_update(
            index_elements=["wamid"],
            set_={"contact_id": func.coalesce(MESSAGES.c.contact_id, link.excluded.contact_id)},
        ).returning(MESSAGES.c.id),
        history=history.on_conflict_do_update(
            index_elements=["wamid"],
            set_={
                **{c: func.coalesce(MESSAGES.c[c], history.excluded[c]) for c in HISTORY_FILL_COLUMNS},
                **{
                    c: case((placeholder, history.excluded[c]), else_=MESSAGES.c[c])
                    for c in HISTORY_REPLACED_COLUMNS
                },
            },
        ).returning(MESSAGES.c.id),
        pricing_held=select(MESSAGES.c.wamid, MESSAGES.c.tenant_id, *(MESSAGES.c[c] for c in PRICING_COLUMNS))
        .where(MESSAGES.c.wamid.in_(bindparam("wamids", expanding=True)))
        .order_by(MESSAGES.c.wamid)
        .with_for_update(),
        pricing=pricing.on_conflict_do_update(
            index_elements=["wamid"], set_={c: pricing.excluded[c] for c in PRICING_COLUMNS}
        ).returning(MESSAGES.c.id),
        account_events=upsert(dialect, ACCOUNT_EVENTS)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(ACCOUNT_EVENTS.c.id),
    )


def store(session: Session, routed: Routed, contacts: ContactIds) -> Inserted:
    """Write every routed update, each message and call pointing at its customer's row in contacts
    (written first: workers/contacts.py); report which rows were new."""
    sql = statements(dialect_of(session))
    inserted = Inserted()
    live = [(t, m) for t, m in routed.messages if m.source == LIVE]
    inbound = _by_wamid((t, m) for t, m in live if m.direction == INBOUND)
    echoes = _by_wamid((t, m) for t, m in live if m.direction == OUTBOUND)
    # Orders first, so that a new order message is inserted already pointing at its order.
    order_ids = _insert_orders(session, sql, inbound, inserted)
    if inbound:
        rows = [_message_row(t, m, RECEIVED, order_ids.get(m.wamid), contacts) for t, m in inbound]
        new = {wamid: (t, as_utc(at)) for t, at, wamid in insert_rows(session, sql.inbound, rows)}
        inserted.messages = list(new.values())
        inserted.new_inbound = [(tenant_id, wamid) for wamid, (tenant_id, _) in new.items()]
        if unlinked := [r for r in rows if r["wamid"] not in new and r["contact_id"] is not None]:
            insert_rows(session, sql.link_contacts, unlinked)
    if echoes:
        insert_rows(session, sql.echoes, [_message_row(t, m, SENT, contacts=contacts) for t, m in echoes])
    if history := _history_rows([(t, m) for t, m in routed.messages if m.source == HISTORY], contacts):
        insert_rows(session, sql.history, history)
    echo_statuses = [(t, _echo_status(m)) for t, m in echoes]
    statuses = [(t, s) for t, s in routed.statuses + echo_statuses if s.status in STATUSES]
    if statuses:
        _record_first_sightings(session, sql, statuses, inserted)
        offered = _offered_pricing(statuses)
        created = _advance_messages(session, sql, statuses, contacts, offered, inserted)
        _price_messages(session, sql, {w: o for w, o in offered.items() if w not in created}, inserted)
    if routed.calls:
        inserted.calls = store_calls(session, routed.calls, contacts)
    if routed.account_events:
        first = {e.fingerprint: (t, e) for t, e in reversed(routed.account_events)}
        insert_rows(session, sql.account_events, [_account_row(*first[f]) for f in sorted(first)])
    return inserted


def message_problems(m: Message) -> list[str]:
    """What in this message its columns cannot hold ('column: why'); empty when it can be stored."""
    problems = row_problems(MESSAGES, _message_row(0, m, m.history_status or RECEIVED))
    if m.content.order is not None:
        problems += row_problems(ORDERS, _order_row(0, m, m.content.order))
    if m.direction == OUTBOUND:  # an echo also records its `sent` sighting
        problems += row_problems(SIGHTINGS, _sighting_row(0, _echo_status(m)))
    return problems


def _echo_status(m: Message) -> Status:
    """An echo is a message the business sent: it counts as `sent` exactly like a sent status."""
    return Status(m.wamid, SENT, m.timestamp, m.wa_id, m.user_id, m.contact_name, customer=m.customer)


def account_event_problems(e: AccountEvent) -> list[str]:
    return row_problems(ACCOUNT_EVENTS, _account_row(None, e))


def _account_row(tenant_id: int | None, e: AccountEvent) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "waba_id": e.waba_id,
        "field": e.field,
        "event": e.event,
        "detail": e.detail,
        "event_at": e.at,
        "fingerprint": e.fingerprint,
    }


def status_problems(s: Status) -> list[str]:
    """What in this status its columns cannot hold; a status we do not store (unknown name) holds nothing."""
    if s.status not in STATUSES:
        return []
    pricing = {"pricing_category": s.pricing_category, "pricing_type": s.pricing_type}
    values = {**_status_values(s), **pricing, "pricing_model": s.pricing_model}
    return row_problems(SIGHTINGS, _sighting_row(0, s)) + row_problems(MESSAGES, values)


def _by_wamid(messages: Iterable[tuple[int, Message]]) -> list[tuple[int, Message]]:
    """The first of each wamid, sorted by wamid."""
    first: dict[str, tuple[int, Message]] = {}
    for tenant_id, message in messages:
        first.setdefault(message.wamid, (tenant_id, message))
    return [first[w] for w in sorted(first)]


def _message_row(
    tenant_id: int,
    m: Message,
    status: str,
    order_id: int | None = None,
    contacts: ContactIds | None = None,
) -> dict[str, object]:
    c = m.content
    return {
        "tenant_id": tenant_id,
        "wamid": m.wamid,
        "direction": m.direction,
        "message_type": m.message_type,
        "wa_id": m.wa_id,
        "user_id": m.user_id,
        "contact_name": m.contact_name,
        "contact_id": contacts.of(tenant_id, m.customer) if contacts else None,
        "body": c.body,
        "status": status,
        "source": m.source,
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


def _history_rows(history: list[tuple[int, Message]], contacts: ContactIds) -> list[dict[str, object]]:
    """Imported messages, one row per wamid in wamid order: a placeholder and its contents in one batch
    make the row the two would make one after the other, in either order."""
    rows: dict[str, dict[str, object]] = {}
    for tenant_id, m in history:
        row = _history_row(tenant_id, m, contacts)
        held = rows.setdefault(m.wamid, row)
        if held is row:
            continue
        if held["message_type"] == PLACEHOLDER:
            held |= {c: row[c] for c in HISTORY_REPLACED_COLUMNS}
        held |= {c: held[c] if held[c] is not None else row[c] for c in HISTORY_FILL_COLUMNS}
    return [rows[w] for w in sorted(rows)]


def _history_row(tenant_id: int, m: Message, contacts: ContactIds) -> dict[str, object]:
    """An imported message: its status as the app last knew it; a message the business sent, sent then."""
    status = RECEIVED if m.direction == INBOUND else m.history_status or SENT
    row = _message_row(tenant_id, m, status, contacts=contacts)
    return row | {"sent_at": m.timestamp} if m.direction == OUTBOUND else row


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
    order_ids: dict[str, int] = {wamid: oid for wamid, oid in insert_rows(session, sql.orders, rows)}
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
        insert_rows(session, sql.order_items, items)
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
    rows = insert_rows(session, sql.sightings, [first[k] for k in sorted(first)])
    inserted.sightings = [(tenant_id, status, as_utc(at)) for tenant_id, status, at in rows]


def _sighting_row(tenant_id: int, s: Status) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "wamid": s.wamid,
        "status": s.status,
        "status_at": s.timestamp,
        "recipient_id": s.recipient_id or s.recipient_user_id,
        "raw": s.raw,
    }


@dataclass(frozen=True)
class Offer:
    """The pricing a batch offers a message: that of its earliest status carrying any."""

    at: datetime
    category: str
    kind: str  # pricing_type, "" when Meta gives none
    model: str | None

    @property
    def key(self) -> tuple[datetime, str, str]:
        """Earlier wins; at one instant, the lesser category and type (so any arrival order agrees)."""
        return (self.at, self.category, self.kind)

    def count(self, tenant_id: int) -> tuple[int, date, str, str, int]:
        """The +1 a message taking this pricing adds to its day (Inserted.pricing)."""
        return (tenant_id, self.at.date(), self.category, self.kind, 1)

    def columns(self) -> dict[str, object]:
        return {
            "pricing_category": self.category,
            "pricing_type": self.kind or None,
            "pricing_model": self.model,
            "priced_at": self.at,
        }


NO_PRICING = dict.fromkeys(PRICING_COLUMNS)


def _offered_pricing(statuses: list[tuple[int, Status]]) -> dict[str, Offer]:
    offered: dict[str, Offer] = {}
    for _, s in statuses:
        if s.pricing_category is None:
            continue
        offer = Offer(s.timestamp, s.pricing_category, s.pricing_type or "", s.pricing_model)
        if s.wamid not in offered or offer.key < offered[s.wamid].key:
            offered[s.wamid] = offer
    return offered


def _advance_messages(
    session: Session,
    sql: Statements,
    statuses: list[tuple[int, Status]],
    contacts: ContactIds,
    offered: dict[str, Offer],
    inserted: Inserted,
) -> set[str]:
    """Upsert each outbound message once, moving its status forward only, whatever the arrival order.

    Where the statement can tell, a message it inserts goes in with the batch's pricing, counted here; it
    returns those wamids (the others are priced by _price_messages, against what their rows hold).
    """
    rows: dict[str, dict[str, object]] = {}
    for tenant_id, s in sorted(statuses, key=lambda ts: ts[1].timestamp):
        row = rows.get(s.wamid)
        if row is None:
            row = rows[s.wamid] = _bare_outbound_row(tenant_id, s.wamid)
        if STATUS_RANK[s.status] > STATUS_RANK.get(str(row["status"]), 0):
            row["status"] = s.status
        values = {**_status_values(s), "contact_id": contacts.of(tenant_id, s.customer)}
        for column, value in values.items():
            row[column] = row[column] or value
    if sql.advance_prices_new_rows:
        for wamid, row in rows.items():
            offer = offered.get(wamid)
            row.update(offer.columns() if offer else NO_PRICING)
    created = set()
    for wamid, tenant_id, new in insert_rows(session, sql.advance, [rows[w] for w in sorted(rows)]):
        if new and (offer := offered.get(wamid)) is not None:
            created.add(wamid)
            inserted.pricing.append(offer.count(tenant_id))
    return created


def _price_messages(session: Session, sql: Statements, offered: dict[str, Offer], inserted: Inserted) -> None:
    """Give each message its offered pricing unless it holds an earlier one, and count it once.

    The message rows are locked already (the advance just wrote them), so what is read here is what the
    transaction overwrites: a message priced before is moved to the earlier day only when an earlier
    priced status arrives (its old day loses the count its new day gains), whatever the arrival order.
    """
    if not offered:
        return
    rows = []
    for wamid, tenant_id, category, kind, _model, at in session.execute(
        sql.pricing_held, {"wamids": sorted(offered)}
    ):
        offer = offered[wamid]
        if at is not None and (as_utc(at), category, kind or "") <= offer.key:
            continue
        if at is not None:
            inserted.pricing.append((tenant_id, as_utc(at).date(), category, kind or "", -1))
        inserted.pricing.append(offer.count(tenant_id))
        rows.append({**_bare_outbound_row(tenant_id, wamid), **offer.columns()})
    if rows:
        insert_rows(session, sql.pricing, rows)


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
        "biz_opaque_callback_data": s.biz_opaque_callback_data,
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
