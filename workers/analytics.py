"""Daily analytics deltas, gathered from rows a transaction really inserted and added in one statement."""

from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import Insert, func
from sqlalchemy.orm import Session

from models import COUNTERS, WhatsAppAnalytics
from models.db import dialect_of, upsert

STATUS_COUNTERS = {
    "sent": "messages_sent",
    "delivered": "messages_delivered",
    "read": "messages_read",
    "failed": "messages_failed",
}


@cache
def _add_deltas(dialect: str) -> Insert:
    table = WhatsAppAnalytics.__table__
    stmt = upsert(dialect, table)
    increments = {c: table.c[c] + stmt.excluded[c] for c in (*COUNTERS, "order_revenue")}
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "date"], set_={**increments, "updated_at": func.now()}
    ).returning(table.c.id)


class DailyDeltas:
    """Increments per (tenant, UTC date of the event's own timestamp)."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[int, date], Counter[str]] = defaultdict(Counter)
        self._revenue: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)

    def count(self, tenant_id: int, when: datetime, counter: str) -> None:
        self._counts[(tenant_id, when.date())][counter] += 1

    def add_order(self, tenant_id: int, when: datetime, total: Decimal) -> None:
        self.count(tenant_id, when, "orders_count")
        self._revenue[(tenant_id, when.date())] += total

    def flush(self, session: Session) -> None:
        """Add every delta with one upsert; rows go in key order so concurrent writers cannot deadlock."""
        if not self._counts:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "date": day,
                **{c: self._counts[(tenant_id, day)][c] for c in COUNTERS},
                "order_revenue": self._revenue[(tenant_id, day)],
            }
            for tenant_id, day in sorted(self._counts)
        ]
        session.execute(_add_deltas(dialect_of(session)), rows)
        self._counts.clear()
        self._revenue.clear()
