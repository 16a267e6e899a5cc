"""The counting rules: which newly inserted rows move which daily counter, added in one statement.

A counter moves only for a row its transaction really inserted (workers/store.py reports them), so
Meta's redeliveries and reorderings never count twice. Days are UTC dates of each event's own timestamp.
"""

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from functools import cache

from sqlalchemy import Insert, func
from sqlalchemy.orm import Session

from models import COUNTERS, WhatsAppAnalytics
from models.analytics import MESSAGES_RECEIVED, ORDER_REVENUE, ORDERS_COUNT
from models.db import dialect_of, upsert
from models.statuses import STATUSES
from workers import metrics
from workers.store import Inserted


@cache
def _add_deltas(dialect: str) -> Insert:
    table = WhatsAppAnalytics.__table__
    stmt = upsert(dialect, table)
    increments = {c: table.c[c] + stmt.excluded[c] for c in (*COUNTERS, ORDER_REVENUE)}
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "date"], set_={**increments, "updated_at": func.now()}
    ).returning(table.c.id)


class DailyDeltas:
    """Increments per (tenant, UTC date of the event's own timestamp)."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[int, date], Counter[str]] = defaultdict(Counter)
        self._revenue: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)

    @classmethod
    def counting(cls, inserted: Inserted) -> "DailyDeltas":
        """The rules: a new inbound message, a first sighting of a status, a new order (and its total)."""
        deltas = cls()
        for tenant_id, at in inserted.messages:
            deltas._counts[(tenant_id, at.date())][MESSAGES_RECEIVED] += 1
        for tenant_id, status, at in inserted.sightings:
            deltas._counts[(tenant_id, at.date())][STATUSES[status].counter] += 1
        for order in inserted.orders:
            day = (order.tenant_id, order.ordered_at.date())
            deltas._counts[day][ORDERS_COUNT] += 1
            deltas._revenue[day] += order.total
        return deltas

    def __bool__(self) -> bool:
        return bool(self._counts)

    def flush(self, session: Session) -> None:
        """Add every delta with one upsert; rows go in key order so concurrent writers cannot deadlock."""
        if not self._counts:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "date": day,
                **{c: self._counts[(tenant_id, day)][c] for c in COUNTERS},
                ORDER_REVENUE: self._revenue[(tenant_id, day)],
            }
            for tenant_id, day in sorted(self._counts)
        ]
        session.execute(_add_deltas(dialect_of(session)), rows)
        metrics.count_increments_on_commit(session, sum(self._counts.values(), Counter()))
