"""Calls: one row per call id, whatever order its connect and terminate events arrive in.

A connect and a terminate fill different columns, so merging them is order-free: each time the earliest
seen, each value the first known, the event the furthest (connect < terminate). A call is counted in the
daily analytics once, by the transaction that first records its end, on the UTC date it started (its
end's when Meta gives no start), with its duration.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, bindparam, func, select
from sqlalchemy.orm import Session

from models import WhatsAppCall
from models.bulk import insert_rows
from models.db import as_utc, dialect_of, upsert
from models.limits import row_problems
from workers.contacts import ContactIds
from workers.events import CallEvent

CALLS = WhatsAppCall.__table__
CONNECT, TERMINATE = "connect", "terminate"
# A call's event only moves forward; an event Meta adds later ranks with connect until known here.
EVENT_RANK = {CONNECT: 1, TERMINATE: 2}
FIRST_VALUE = (
    "direction",
    "from_number",
    "to_number",
    "contact_id",
    "status",
    "duration",
    "biz_opaque_callback_data",
)
EARLIEST = ("connected_at", "terminated_at", "start_time", "end_time")
COLUMNS = ("tenant_id", "call_id", "event", *FIRST_VALUE, *EARLIEST)


@dataclass(frozen=True)
class CallDay:
    """A call whose end this transaction recorded first: what it adds to its tenant's day."""

    tenant_id: int
    day: date
    seconds: int


def call_problems(e: CallEvent) -> list[str]:
    return row_problems(CALLS, _event_row(0, e, None))


def _event_row(tenant_id: int, e: CallEvent, contact_id: int | None) -> dict[str, Any]:
    ended = e.event == TERMINATE
    return {
        "tenant_id": tenant_id,
        "call_id": e.call_id,
        "event": e.event,
        "direction": e.direction,
        "from_number": e.from_number,
        "to_number": e.to_number,
        "contact_id": contact_id,
        "status": e.status if ended else None,
        "duration": e.duration if ended else None,
        "biz_opaque_callback_data": e.biz_opaque_callback_data,
        "connected_at": e.at if e.event == CONNECT else None,
        "terminated_at": e.at if ended else None,
        "start_time": e.start_time,
        "end_time": e.end_time,
    }


def _merge(held: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two accounts of one call as one: order-free (see the module's docstring)."""
    merged = dict(held)
    for column in FIRST_VALUE:
        merged[column] = held[column] if held[column] is not None else new[column]
    for column in EARLIEST:
        times = [t for t in (held[column], new[column]) if t is not None]
        merged[column] = min(times) if times else None
    merged["event"] = max(held["event"], new["event"], key=lambda e: EVENT_RANK.get(e, 1))
    return merged


@dataclass(frozen=True)
class _Statements:
    insert: Insert
    held: Select[Any]
    update: Insert


@cache
def _statements(dialect: str) -> _Statements:
    update = upsert(dialect, CALLS)
    return _Statements(
        insert=upsert(dialect, CALLS)
        .on_conflict_do_nothing(index_elements=["call_id"])
        .returning(CALLS.c.call_id),
        held=select(*(CALLS.c[c] for c in COLUMNS))
        .where(CALLS.c.call_id.in_(bindparam("call_ids", expanding=True)))
        .order_by(CALLS.c.call_id)
        .with_for_update(),
        update=update.on_conflict_do_update(
            index_elements=["call_id"],
            set_={**{c: update.excluded[c] for c in COLUMNS if c != "call_id"}, "updated_at": func.now()},
        ).returning(CALLS.c.id),  # models/bulk.py sends a statement with RETURNING as one multi-row INSERT
    )


def store_calls(
    session: Session, events: Iterable[tuple[int, CallEvent]], contacts: ContactIds
) -> list[CallDay]:
    """Write each call once, merged with what is stored; report the calls whose end is new."""
    sql = _statements(dialect_of(session))
    calls: dict[str, dict[str, Any]] = {}
    for tenant_id, e in events:
        row = _event_row(tenant_id, e, contacts.of(tenant_id, e.customer))
        calls[e.call_id] = _merge(calls[e.call_id], row) if e.call_id in calls else row
    rows = [calls[c] for c in sorted(calls)]
    new = {call_id for (call_id,) in insert_rows(session, sql.insert, rows)}
    ended = [row for row in rows if row["call_id"] in new and row["terminated_at"] is not None]
    if held_ids := sorted(set(calls) - new):
        changed = []
        for record in session.execute(sql.held, {"call_ids": held_ids}).mappings():
            held = {c: as_utc(v) for c, v in record.items()}
            merged = _merge(held, calls[held["call_id"]])
            if merged != held:
                changed.append(merged)
            if held["terminated_at"] is None and merged["terminated_at"] is not None:
                ended.append(merged)
        if changed:
            insert_rows(session, sql.update, changed)
    return [
        CallDay(row["tenant_id"], (row["start_time"] or row["terminated_at"]).date(), row["duration"] or 0)
        for row in ended
    ]
