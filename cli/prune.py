"""`wahooks prune`: delete raw bodies processed long ago, in small transactions, beside running workers.

Only the raw copies in `webhook_events` go; the messages, statuses, orders and counters made from them stay.
A pruned body cannot be reprocessed (`wahooks reprocess` reads the raw bodies), and a redelivery of one
is stored again as a new body (processing is idempotent, so it counts nothing twice).
"""

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, select

from models import WebhookEvent
from models.db import Database
from models.events import IGNORED, PARTIAL, PROCESSED

log = logging.getLogger(__name__)

# Outcomes that may be pruned. `failed` bodies never are: they wait for an operator (`wahooks reprocess`).
PRUNABLE = (PROCESSED, IGNORED, PARTIAL)
DEFAULT_OUTCOMES = (PROCESSED,)
DEFAULT_BATCH = 1000
_AGE = re.compile(r"(\d+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """90d, 36h or 12w: a positive whole number of hours, days or weeks; ValueError otherwise."""
    match = _AGE.fullmatch(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(
            f"{text!r} is not an age: a positive whole number of hours, days or weeks, e.g. 90d, 36h, 12w"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True)
class Pruned:
    cutoff: datetime
    deleted: int  # rows deleted, or with dry_run the rows that would be
    batches: int
    seconds: float


def _old(cutoff: datetime, outcomes: Sequence[str]) -> ColumnElement[bool]:
    # processed_at (indexed) moves with every redelivery and reprocessing: a body goes once it has been
    # left alone for the whole age.
    return (WebhookEvent.processed_at < cutoff) & WebhookEvent.outcome.in_(outcomes)


def prune(
    db: Database,
    older_than: timedelta,
    outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Pruned:
    """Delete the bodies with one of outcomes processed before now - older_than, batch rows a transaction.

    Each batch takes its rows with FOR UPDATE SKIP LOCKED (PostgreSQL): a row a worker is writing is
    skipped, never waited for, and a worker waits at most for one short batch. SQLite, which locks the
    whole database for a write, gets the same short transactions.
    """
    if refused := set(outcomes) - set(PRUNABLE):
        raise ValueError(f"outcomes {sorted(refused)} are never pruned; prunable: {', '.join(PRUNABLE)}")
    cutoff = (now or datetime.now(UTC)) - older_than
    old = _old(cutoff, outcomes)
    started = time.perf_counter()
    if dry_run:
        with db.session() as session:
            count = session.scalar(select(func.count()).select_from(WebhookEvent).where(old)) or 0
        log.info(
            "prune dry run: %d bodies processed before %s would be deleted",
            count,
            cutoff.isoformat(timespec="seconds"),
            extra={"event": "prune", "outcome": "dry-run", "count": count},
        )
        return Pruned(cutoff, count, 0, time.perf_counter() - started)
    chosen = (
        select(WebhookEvent.id)
        .where(old)
        .order_by(WebhookEvent.processed_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = delete(WebhookEvent).where(WebhookEvent.id.in_(chosen))
    deleted = batches = 0
    while True:
        with db.session() as session:
            rows = cast(CursorResult[Any], session.execute(statement)).rowcount
        if not rows:
            break
        deleted += rows
        batches += 1
        log.debug("prune batch: %d bodies deleted", rows, extra={"event": "prune", "count": rows})
    seconds = time.perf_counter() - started
    log.info(
        "prune: %d bodies processed before %s deleted in %d batches, %.1f s",
        deleted,
        cutoff.isoformat(timespec="seconds"),
        batches,
        seconds,
        extra={"event": "prune", "outcome": "deleted", "count": deleted},
    )
    return Pruned(cutoff, deleted, batches, seconds)
