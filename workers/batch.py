"""Many webhook bodies written in one transaction: every statement spans all of them.

Parse each body, route its changes to tenants, then store the whole batch, add its analytics and record
each body's outcome in one transaction. A failing batch is split in halves until the bad body stands
alone, so one bad body never costs its batch mates (workers/jobs.py decides what happens to it).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from sqlalchemy import Insert, func, null
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from models import WebhookEvent
from models.db import Database, dialect_of, upsert
from models.events import FAILED, IGNORED, PARTIAL, PROCESSED
from runtime.inbox import body_digest
from workers.analytics import DailyDeltas
from workers.events import Envelope
from workers.parse import parse
from workers.store import Routed, message_problems, status_problems, store
from workers.tenants import TenantDirectory

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "not now" rather than "never": the job is retried with backoff, never bisected.
TRANSIENT_DB = (OperationalError, InterfaceError, PoolTimeout)
DEADLOCK_OR_SERIALIZATION = {"40P01", "40001"}
IN_PLACE_ATTEMPTS = 3


@dataclass(frozen=True)
class Body:
    """A webhook body and what it parsed into."""

    raw: bytes
    digest: str
    envelope: Envelope
    copies: int = 1  # identical bodies in one batch are written once and counted as so many runs

    @classmethod
    def parse(cls, raw: bytes, copies: int = 1) -> "Body":
        return cls(raw, body_digest(raw), parse(raw), copies)


@dataclass
class Outcome:
    """What one body did: its webhook_events outcome, the updates applied, and what was skipped and why."""

    outcome: str = IGNORED
    applied: int = 0
    notes: list[str] = field(default_factory=list)
    tenants: set[int] = field(default_factory=set)


@dataclass
class Failure:
    body: bytes
    digest: str
    error: Exception


@dataclass
class Written:
    """What a batch came to: the outcome of every body written, and the bodies that failed alone."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def route(envelope: Envelope, tenant_of: dict[str, int], into: Routed) -> Outcome:
    """Add a body's updates for known tenants to `into`; say what was applied and what was skipped."""
    result = Outcome(notes=list(envelope.skipped))
    for change in envelope.changes:
        result.notes += change.skipped
        if not change.update_count:
            continue
        tenant_id = tenant_of.get(change.phone_number_id or "")
        if tenant_id is None:
            why = (
                f"unknown phone_number_id {change.phone_number_id}"
                if change.phone_number_id
                else "no metadata"
            )
            result.notes.append(f"{change.field} change ({why}): {change.update_count} updates not stored")
            continue
        messages = [m for m in change.messages if _storable(m.where, message_problems(m), result.notes)]
        statuses = [s for s in change.statuses if _storable(s.where, status_problems(s), result.notes)]
        for message in messages:
            if message.content.order is not None:
                result.notes += (f"{message.where}.{note}" for note in message.content.order.set_aside)
        into.messages.extend((tenant_id, m) for m in messages)
        into.statuses.extend((tenant_id, s) for s in statuses)
        if messages or statuses:
            result.applied += len(messages) + len(statuses)
            result.tenants.add(tenant_id)
    result.outcome = IGNORED if not result.applied else PARTIAL if result.notes else PROCESSED
    return result


def _storable(where: str, problems: list[str], notes: list[str]) -> bool:
    """True when the item fits its columns; otherwise it is set aside with a note naming each field."""
    if problems:
        notes.append(f"{where}: set aside: {'; '.join(problems)}")
    return not problems


def write(db: Database, tenants: TenantDirectory, bodies: list[Body], job_id: str | None) -> Written:
    """Write the bodies in one transaction; when it fails for a reason a retry cannot fix, bisect.

    Transient database errors propagate (the job is retried whole: writing is idempotent).
    """
    try:
        return Written(outcomes=_write_together(db, tenants, bodies, job_id))
    except TRANSIENT_DB:
        raise
    except Exception as error:
        if len(bodies) == 1:
            return Written(failures=[Failure(bodies[0].raw, bodies[0].digest, error)])
    half = len(bodies) // 2
    first, second = write(db, tenants, bodies[:half], job_id), write(db, tenants, bodies[half:], job_id)
    return Written({**first.outcomes, **second.outcomes}, first.failures + second.failures)


def _write_together(
    db: Database, tenants: TenantDirectory, bodies: list[Body], job_id: str | None
) -> dict[str, Outcome]:
    numbers = {
        c.phone_number_id for b in bodies for c in b.envelope.changes if c.phone_number_id and c.update_count
    }
    tenant_of = tenants.resolve(db, numbers) if numbers else {}
    return _retrying_deadlocks(db, lambda session: _apply(session, tenant_of, bodies, job_id))


def _apply(
    session: Session, tenant_of: dict[str, int], bodies: list[Body], job_id: str | None
) -> dict[str, Outcome]:
    routed = Routed()
    outcomes = {b.digest: route(b.envelope, tenant_of, routed) for b in bodies}
    if routed:
        DailyDeltas.counting(store(session, routed)).flush(session)
    rows = [
        {
            "sha256": b.digest,
            "body": b.raw,
            "outcome": outcomes[b.digest].outcome,
            "notes": outcomes[b.digest].notes or None,
            "job_id": job_id,
            "times_processed": b.copies,
        }
        for b in sorted(bodies, key=lambda b: b.digest)
    ]
    session.execute(_processed_event(dialect_of(session)), rows)
    return outcomes


def _retrying_deadlocks(db: Database, work: Callable[[Session], T]) -> T:
    """Run work in a transaction, again (a few times) if PostgreSQL chose it as a deadlock victim."""
    for attempt in range(1, IN_PLACE_ATTEMPTS + 1):
        try:
            with db.session() as session:
                return work(session)
        except OperationalError as error:
            if _sqlstate(error) not in DEADLOCK_OR_SERIALIZATION or attempt == IN_PLACE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


@cache
def _processed_event(dialect: str) -> Insert:
    """Keep each distinct body once; a redelivery updates its outcome and counts the run."""
    table = WebhookEvent.__table__
    # Constants are SQL, not parameters: SQLAlchemy sends a multi-row INSERT only when every parameter
    # belongs to a row.
    stmt = upsert(dialect, table).values(processed_at=func.now())
    return stmt.on_conflict_do_update(
        index_elements=["sha256"],
        set_={
            "last_received_at": func.now(),
            "processed_at": func.now(),
            "outcome": stmt.excluded.outcome,
            "notes": stmt.excluded.notes,
            "error": null(),
            "job_id": stmt.excluded.job_id,
            "times_processed": table.c.times_processed + stmt.excluded.times_processed,
        },
    ).returning(table.c.id)  # RETURNING: SQLAlchemy then sends all rows in one multi-row INSERT


@cache
def _failed_event(dialect: str) -> Insert:
    table = WebhookEvent.__table__
    stmt = upsert(dialect, table).values(outcome=FAILED)
    return stmt.on_conflict_do_update(
        index_elements=["sha256"],
        set_={"outcome": FAILED, "error": stmt.excluded.error, "job_id": stmt.excluded.job_id},
    )


def record_failure(db: Database, failure: Failure, job_id: str | None) -> None:
    """Keep the body and why it failed, in a transaction of its own."""
    error = failure.error
    with db.session() as session:
        session.execute(
            _failed_event(dialect_of(session)),
            {
                "sha256": failure.digest,
                "body": failure.body,
                "error": f"{type(error).__name__}: {error}"[:4000],
                "job_id": job_id,
            },
        )
