"""A worker process's metrics, served by its own exporter on WAHOOKS_METRICS_PORT.

One exporter per worker process rather than the web's multiprocess mode: a worker is one process with
one job at a time, so Prometheus scrapes each (its `instance` label tells them apart) and sums them,
and a dead worker's series simply stop instead of lingering in a shared directory. Labels are fixed
outcomes and counter names, never a phone number, a wamid or a tenant.
"""

from collections import Counter as Tally
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram, start_http_server
from sqlalchemy import event
from sqlalchemy.orm import Session

BODIES = Counter("wahooks_bodies_processed_total", "Webhook bodies written, by outcome", ["outcome"])
EVENTS = Counter(
    "wahooks_events_processed_total",
    "Messages and statuses in the bodies processed: applied, set_aside (not stored: its body's"
    " webhook_events notes say why) or failed (in a body that failed)",
    ["outcome"],
)
BODY_SECONDS = Histogram(
    "wahooks_body_processing_seconds", "A batch's processing time shared among its bodies"
)
BATCH_SECONDS = Histogram(
    "wahooks_batch_processing_seconds",
    "Processing time of one job's batch of bodies",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LAG_SECONDS = Histogram(
    "wahooks_lag_seconds",
    "From an event's own timestamp at Meta to the commit of its body",
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
ANALYTICS_INCREMENTS = Counter(
    "wahooks_analytics_increments_total", "What the daily analytics counters were increased by", ["counter"]
)


def serve(port: int) -> None:
    """Start this process's exporter: a daemon thread answering GET /metrics on the port."""
    start_http_server(port)


def count_batch(outcomes: Iterable[str], seconds: float) -> None:
    """One job's batch: each body's outcome, the batch's time and each body's share of it."""
    tally = Tally(outcomes)
    BATCH_SECONDS.observe(seconds)
    share = seconds / max(1, tally.total())
    for outcome, count in tally.items():
        BODIES.labels(outcome).inc(count)
        for _ in range(count):
            BODY_SECONDS.observe(share)


def count_events(outcome: str, count: int) -> None:
    if count:
        EVENTS.labels(outcome).inc(count)


def observe_lag(timestamps: Iterable[datetime]) -> None:
    """The lag of events whose bodies were just committed."""
    now = datetime.now(UTC).timestamp()
    for timestamp in timestamps:
        LAG_SECONDS.observe(max(0.0, now - timestamp.timestamp()))


def count_increments_on_commit(session: Session, increments: Tally[str]) -> None:
    """Count the analytics increments once their transaction commits (a rolled-back batch is retried)."""

    def committed(_: Session) -> None:
        for counter, amount in increments.items():
            ANALYTICS_INCREMENTS.labels(counter).inc(amount)

    event.listen(session, "after_commit", committed, once=True)
