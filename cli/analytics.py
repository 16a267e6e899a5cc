"""`wahooks analytics`: each tenant's daily counters over a date range, with delivery and read rates.

The counters are the columns of `whatsapp_analytics` (models/analytics.py's COUNTERS, which follow the status
table in models/statuses.py); every day of the range is reported, a day without a row as zeros.
"""

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cli import tenants
from models import WhatsAppAnalytics
from models.analytics import COUNTERS, ORDER_REVENUE
from models.db import Database
from models.statuses import SENT, STATUSES

# Each rate is a status's counter over the same day's `sent` counter.
RATES = {f"{status}_rate": STATUSES[status].counter for status in ("delivered", "read")}
RATE_DENOMINATOR = STATUSES[SENT].counter
REVENUE_NOTE = "order_revenue sums every currency"
RATE_NOTE = "rates: delivered / sent and read / sent of the same day (none when nothing was sent)"
UNBOUNDED = 10_000  # columns: measure a table's natural width
REVENUE_PLACES = Decimal("0.0001")  # the scale of the column (models/base.py Money)


class AnalyticsError(Exception):
    pass


@dataclass(frozen=True)
class TenantRef:
    id: int
    name: str
    phone_number_id: str


@dataclass(frozen=True)
class Day:
    date: date
    counts: dict[str, int]  # every counter of COUNTERS
    revenue: Decimal

    def rate(self, counter: str) -> float | None:
        """`counter` over the day's sent messages; None when none was sent."""
        sent = self.counts[RATE_DENOMINATOR]
        return self.counts[counter] / sent if sent else None

    def rates(self) -> dict[str, float | None]:
        return {name: self.rate(counter) for name, counter in RATES.items()}


@dataclass(frozen=True)
class Series:
    tenant: TenantRef
    days: list[Day]


@dataclass(frozen=True)
class Report:
    since: date | None  # None: a bound was neither given nor stored, so there is no day to report
    until: date | None
    series: list[Series]


def select_tenants(db: Database, wanted: str | None) -> list[TenantRef]:
    """Every tenant, or the one whose phone number id or name is `wanted`."""
    every = [TenantRef(tid, name, pnid) for tid, name, pnid, *_ in tenants.listing(db)]
    if wanted is None:
        return every
    by_number = [t for t in every if t.phone_number_id == wanted]
    by_name = [t for t in every if t.name == wanted]
    if len(by_number) == 1:
        return by_number
    if len(by_name) == 1:
        return by_name
    if by_name:
        raise tenants.TenantError(f"{len(by_name)} tenants are named {wanted!r}: give a phone number id")
    raise tenants.TenantError(f"no tenant has the phone number id or name {wanted!r}")


def report(db: Database, wanted: str | None, since: date | None, until: date | None) -> Report:
    """The daily series of the selected tenants, every day from since to until."""
    chosen = select_tenants(db, wanted)
    with db.session() as session:
        return report_in(session, chosen, since, until)


def report_in(session: Session, chosen: list[TenantRef], since: date | None, until: date | None) -> Report:
    """report() through a given session (the REST API's sees one tenant only)."""
    ids = [t.id for t in chosen]
    first, last = session.execute(
        select(func.min(WhatsAppAnalytics.date), func.max(WhatsAppAnalytics.date)).where(
            WhatsAppAnalytics.tenant_id.in_(ids)
        )
    ).one()
    since, until = _bounds(since, until, first, last)
    if since is None or until is None:
        return Report(None, None, [Series(t, []) for t in chosen])
    if since > until:
        raise AnalyticsError(f"--since {since} is after --until {until}")
    rows = session.scalars(
        select(WhatsAppAnalytics).where(
            WhatsAppAnalytics.tenant_id.in_(ids), WhatsAppAnalytics.date.between(since, until)
        )
    ).all()
    stored = {(row.tenant_id, row.date): _day(row) for row in rows}
    return Report(since, until, [Series(t, list(_filled(stored, t.id, since, until))) for t in chosen])


def _bounds(
    since: date | None, until: date | None, first: date | None, last: date | None
) -> tuple[date | None, date | None]:
    """A missing bound is the first or last stored day, or the given bound if that is further out."""
    if since is None:
        since = min(first, until) if first and until else first or until
    if until is None:
        until = max(last, since) if last and since else last or since
    return since, until


def _day(row: WhatsAppAnalytics) -> Day:
    counts = {counter: getattr(row, counter) for counter in COUNTERS}
    return Day(row.date, counts, Decimal(getattr(row, ORDER_REVENUE)))


def _filled(stored: dict[tuple[int, date], Day], tenant_id: int, since: date, until: date) -> Iterator[Day]:
    """Every day from since to until, zeros where no row was stored, so a series has no gaps."""
    for offset in range((until - since).days + 1):
        day = since + timedelta(days=offset)
        yield stored.get((tenant_id, day)) or Day(day, dict.fromkeys(COUNTERS, 0), Decimal(0))


def _revenue(day: Day) -> str:
    return str(day.revenue.quantize(REVENUE_PLACES))


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def day_record(day: Day) -> dict[str, object]:
    """A day as JSON has it: every counter, the rates to 4 places, the revenue as a decimal string."""
    return {
        "date": day.date.isoformat(),
        **day.counts,
        **{name: _ratio(rate) for name, rate in day.rates().items()},
        ORDER_REVENUE: _revenue(day),
    }


def as_json(result: Report) -> str:
    """One object: the range, the notes, and per tenant its days with every counter, rate and revenue."""
    return json.dumps(
        {
            "since": result.since and result.since.isoformat(),
            "until": result.until and result.until.isoformat(),
            "notes": [RATE_NOTE, REVENUE_NOTE],
            "tenants": [
                {
                    "name": s.tenant.name,
                    "phone_number_id": s.tenant.phone_number_id,
                    "days": [day_record(day) for day in s.days],
                }
                for s in result.series
            ],
        },
        indent=2,
    )


CSV_HEADER = ("tenant", "phone_number_id", "date", *COUNTERS, *RATES, ORDER_REVENUE)


def as_csv(result: Report) -> str:
    """One row per tenant and day; an empty rate is a day with nothing sent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in result.series:
        for day in s.days:
            rates = (f"{rate:.4f}" if rate is not None else "" for rate in day.rates().values())
            writer.writerow(
                (
                    s.tenant.name,
                    s.tenant.phone_number_id,
                    day.date,
                    *day.counts.values(),
                    *rates,
                    _revenue(day),
                )
            )
    return out.getvalue()


def short_name(counter: str) -> str:
    """A counter's column heading: messages_delivered -> delivered, orders_count -> orders."""
    return counter.removeprefix("messages_").removesuffix("_count")


def print_tables(result: Report, console: Console) -> None:
    """One table per tenant, with the range and what the rates and revenue mean."""
    span = f"{result.since} to {result.until}" if result.since else "no stored day"
    for s in result.series:
        table = Table(
            title=f"{s.tenant.name} ({s.tenant.phone_number_id}), {span}",
            caption=f"{RATE_NOTE}; {REVENUE_NOTE}",
        )
        table.add_column("date")
        for heading in (
            *map(short_name, COUNTERS),
            *(f"{short_name(c)}/sent" for c in RATES.values()),
            "revenue",
        ):
            table.add_column(heading, justify="right")
        for day in s.days:
            rates = (f"{rate:.1%}" if rate is not None else "-" for rate in day.rates().values())
            table.add_row(day.date.isoformat(), *map(str, day.counts.values()), *rates, f"{day.revenue:.2f}")
        # Its natural width, even past a narrow terminal's or a pipe's 80 columns: a cut number is worse.
        natural = console.measure(table, options=console.options.update_width(UNBOUNDED)).maximum
        console.width = max(console.width, natural)
        console.print(table)


def show(result: Report, fmt: str) -> None:
    """Print the report on stdout as a table, CSV or JSON."""
    if fmt == "table":
        print_tables(result, Console())
    elif fmt == "csv":
        sys.stdout.write(as_csv(result))
    else:
        print(as_json(result))
