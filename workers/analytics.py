"""The counting rules: which newly inserted rows move which daily counter, added in one statement each.

A counter moves only for a row its transaction really inserted (workers/store.py reports them), so
Meta's redeliveries and reorderings never count twice. Days are UTC dates of each event's own timestamp.
Imported history (coexistence) inserts no row that counts: the daily counters are for live traffic.
"""

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from functools import cache

from sqlalchemy import Insert, event, func
from sqlalchemy.orm import Session

from models import COUNTERS, WhatsAppAnalytics, WhatsAppPricingDaily
from models.analytics import (
    CALL_COUNTERS,
    CALL_SECONDS,
    CALLS_COUNT,
    MESSAGES_RECEIVED,
    ORDER_REVENUE,
    ORDERS_COUNT,
)
from models.bulk import insert_rows
from models.db import dialect_of, upsert
from models.statuses import STATUSES
from workers import metrics
from workers.store import Inserted

DAILY = (*COUNTERS, *CALL_COUNTERS)
PRICING = WhatsAppPricingDaily.__table__
PRICING_KEY = ("tenant_id", "date", "pricing_category", "pricing_type")


@cache
def _add_deltas(dialect: str) -> Insert:
    table = WhatsAppAnalytics.__table__
    stmt = upsert(dialect, table)
    increments = {c: table.c[c] + stmt.excluded[c] for c in (*DAILY, ORDER_REVENUE)}
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "date"], set_={**increments, "updated_at": func.now()}
    ).returning(table.c.id)


@cache
def _add_priced(dialect: str) -> Insert:
    stmt = upsert(dialect, PRICING)
    return stmt.on_conflict_do_update(
        index_elements=list(PRICING_KEY),
        set_={"messages": PRICING.c.messages + stmt.excluded.messages, "updated_at": func.now()},
    ).returning(PRICING.c.id)


class DailyDeltas:
    """Increments per (tenant, UTC date of the event's own timestamp)."""

    def __init__(self) -> None:
        self._counts: defaultdict[tuple[int, date], Counter[str]] = defaultdict(Counter)
        self._revenue: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)
        self._priced: Counter[tuple[int, date, str, str]] = Counter()

    @classmethod
    def counting(cls, inserted: Inserted) -> "DailyDeltas":
        """The rules: a new inbound message, a first sighting of a status, a new order (and its total),
        a message priced (or moved to the day of an earlier priced status), a call's end."""
        deltas = cls()
        for tenant_id, at in inserted.messages:
            deltas._counts[(tenant_id, at.date())][MESSAGES_RECEIVED] += 1
        for tenant_id, status, at in inserted.sightings:
            deltas._counts[(tenant_id, at.date())][STATUSES[status].counter] += 1
        for order in inserted.orders:
            ordered = (order.tenant_id, order.ordered_at.date())
            deltas._counts[ordered][ORDERS_COUNT] += 1
            deltas._revenue[ordered] += order.total
        for tenant_id, day, category, kind, delta in inserted.pricing:
            deltas._priced[(tenant_id, day, category, kind)] += delta
        for call in inserted.calls:
            deltas._counts[(call.tenant_id, call.day)].update({CALLS_COUNT: 1, CALL_SECONDS: call.seconds})
        return deltas

    def __bool__(self) -> bool:
        return bool(self._counts or self._priced)

    def flush(self, session: Session) -> None:
        """Add every delta with one upsert per table, as the last statements before the transaction commits.

        Every batch of a tenant's day updates the same row, and a worker holds that row's lock from its
        update until its commit: the later the update, the less the other workers wait for it
        (bench/analytics_locks.py). Rows go in key order so concurrent writers cannot deadlock.
        """
        if self:
            event.listen(session, "before_commit", self._add, once=True)

    def _add(self, session: Session) -> None:
        dialect = dialect_of(session)
        if self._counts:
            rows = [
                {
                    "tenant_id": tenant_id,
                    "date": day,
                    **{c: self._counts[(tenant_id, day)][c] for c in DAILY},
                    ORDER_REVENUE: self._revenue[(tenant_id, day)],
                }
                for tenant_id, day in sorted(self._counts)
            ]
            insert_rows(session, _add_deltas(dialect), rows)
            metrics.count_increments_on_commit(session, sum(self._counts.values(), Counter()))
        # A move within one batch can cancel out: nothing to add then.
        if priced := [
            dict(zip((*PRICING_KEY, "messages"), (*k, n), strict=True))
            for k, n in sorted(self._priced.items())
            if n
        ]:
            insert_rows(session, _add_priced(dialect), priced)
