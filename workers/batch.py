"""Many webhook bodies written together: every statement spans all of them.

Parse each body and route its changes to tenants; write the batch's customers in a short transaction,
then store the rest of the batch, add its analytics and record each body's outcome in one more. A failing
batch is split in halves until the bad body stands alone, so one bad body never costs its batch mates
(workers/jobs.py decides what happens to it).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from sqlalchemy import Insert, func, null
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from models import WebhookEvent
from models.bulk import insert_rows
from models.db import Database, dialect_of, upsert
from models.events import FAILED, IGNORED, PARTIAL, PROCESSED
from outbound import hook as outbound_hook
from runtime.inbox import body_digest
from workers.analytics import DailyDeltas
from workers.calls import call_problems
from workers.contacts import ContactRace, customer_problems, store_contacts
from workers.events import Change, Customer, Envelope
from workers.parse import parse
from workers.store import Routed, account_event_problems, message_problems, status_problems, store
from workers.tenants import TenantDirectory

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "not now" rather than "never": the job is retried with backoff, never bisected.
TRANSIENT_DB = (OperationalError, InterfaceError, PoolTimeout)
DEADLOCK_OR_SERIALIZATION = {"40P01", "40001"}
FOREIGN_KEY_VIOLATION = "23503"
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


def route(
    envelope: Envelope, tenant_of: dict[str, int], into: Routed, tenant_of_waba: dict[str, int] | None = None
) -> Outcome:
    """Add a body's updates for known tenants to `into`; say what was applied and what was skipped.

    Account events go by the WABA id of their entry, and are kept without a tenant when none has it.
    """
    result = Outcome(notes=list(envelope.skipped))
    for change in envelope.changes:
        result.notes += change.skipped
        if change.account_events:
            _route_account_events(change, (tenant_of_waba or {}).get(change.waba_id or ""), into, result)
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
        applied = _route_change(change, tenant_id, into, result.notes)
        if applied:
            result.applied += applied
            result.tenants.add(tenant_id)
    result.outcome = IGNORED if not result.applied else PARTIAL if result.notes else PROCESSED
    return result


def _route_change(change: Change, tenant_id: int, into: Routed, notes: list[str]) -> int:
    """A phone number's updates that fit their columns, with what they say of customers; how many."""
    messages = [m for m in change.messages if _storable(m.where, message_problems(m), notes)]
    statuses = [s for s in change.statuses if _storable(s.where, status_problems(s), notes)]
    calls = [c for c in change.calls if _storable(c.where, call_problems(c), notes)]
    preferences = [p for p in change.preferences if _fits(p.where, p.customer, notes)]
    address_book = [e for e in change.address_book if _fits(e.where, e.customer, notes)]
    for message in messages:
        if message.content.order is not None:
            notes += (f"{message.where}.{note}" for note in message.content.order.set_aside)
    into.messages.extend((tenant_id, m) for m in messages)
    into.statuses.extend((tenant_id, s) for s in statuses)
    into.calls.extend((tenant_id, c) for c in calls)
    contacts = into.contacts
    involved = [(m.where, m.customer) for m in messages] + [(s.where, s.customer) for s in statuses]
    for where, customer in involved + [(c.where, c.customer) for c in calls]:
        # A customer whose ids do not fit costs only the link to their contact row, not the item.
        if customer is not None and _fits(where, customer, notes):
            contacts.seen.append((tenant_id, customer))
    contacts.preferences.extend((tenant_id, p) for p in preferences)
    contacts.address_book.extend((tenant_id, e) for e in address_book)
    for c in change.id_changes if messages else ():  # an id change rides on its system message
        if _fits(c.where, Customer(c.new_wa_id, c.new_user_id, c.new_parent_user_id), notes):
            contacts.id_changes.append((tenant_id, c))
    return len(messages) + len(statuses) + len(calls) + len(preferences) + len(address_book)


def _route_account_events(change: Change, tenant_id: int | None, into: Routed, result: Outcome) -> None:
    events = [e for e in change.account_events if _storable(e.where, account_event_problems(e), result.notes)]
    into.account_events.extend((tenant_id, e) for e in events)
    result.applied += len(events)
    if events and tenant_id is not None:
        result.tenants.add(tenant_id)


def _fits(where: str, customer: Customer, notes: list[str]) -> bool:
    return _storable(f"{where} (customer)", customer_problems(customer), notes)


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
    changes = [c for b in bodies for c in b.envelope.changes]
    numbers = {c.phone_number_id for c in changes if c.phone_number_id and c.update_count}
    wabas = {c.waba_id for c in changes if c.waba_id and c.account_events}
    tenant_of = tenants.resolve(db, numbers) if numbers else {}
    tenant_of_waba = tenants.resolve_wabas(db, wabas) if wabas else {}
    routed = Routed()
    outcomes = {b.digest: route(b.envelope, tenant_of, routed, tenant_of_waba) for b in bodies}
    _retrying_races(lambda: _write_routed(db, routed, outcomes, bodies, job_id))
    return outcomes


def _write_routed(
    db: Database, routed: Routed, outcomes: dict[str, Outcome], bodies: list[Body], job_id: str | None
) -> None:
    """The batch's customers in a short transaction of their own, then everything else in one.

    A customer's row stays locked only while its own transaction writes it, not until the batch commits:
    with one transaction, two workers whose batches shared a single customer ran one after the other
    (bench/README.md). Writing customers is idempotent, so a batch that fails after them, or runs again,
    leaves them as one run would.
    """
    with db.session() as session:
        contacts = store_contacts(session, routed.contacts)
    try:
        with db.session() as session:
            if routed:
                inserted = store(session, routed, contacts)
                DailyDeltas.counting(inserted).flush(session)
                # Issue 12: the Graph API calls these new rows call for, recorded with them
                # (outbound/hook.py).
                outbound_hook.plan(session, routed, inserted)
            _record_outcomes(session, outcomes, bodies, job_id)
    except IntegrityError as error:
        if _sqlstate(error) == FOREIGN_KEY_VIOLATION:
            # A contact this batch points at was merged into another after the customers' transaction.
            raise ContactRace(str(error.orig)) from error
        raise


def _record_outcomes(
    session: Session, outcomes: dict[str, Outcome], bodies: list[Body], job_id: str | None
) -> None:
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
    insert_rows(session, _processed_event(dialect_of(session)), rows)


def _retrying_races(work: Callable[[], T]) -> T:
    """Run work again (a few times) if PostgreSQL chose one of its transactions as a deadlock victim or
    another worker changed one of its customers first."""
    for attempt in range(1, IN_PLACE_ATTEMPTS + 1):
        try:
            return work()
        except ContactRace:
            if attempt == IN_PLACE_ATTEMPTS:
                raise
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
