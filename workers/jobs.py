"""The RQ job: process a batch of webhook bodies, each in its own transaction, exactly once in effect."""

import logging
import time
from dataclasses import dataclass, field
from functools import cache

from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from sqlalchemy import Insert, func
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from models import WebhookEvent
from models.db import Database, dialect_of, upsert
from models.events import FAILED, IGNORED, PARTIAL, PROCESSED
from runtime.inbox import JOB_PATH, body_digest
from workers import services
from workers.analytics import DailyDeltas
from workers.events import Envelope
from workers.parse import parse
from workers.store import Routed, store
from workers.tenants import TenantDirectory

log = logging.getLogger(__name__)

# Errors that say "not now" rather than "never": the job is retried with backoff.
TRANSIENT = (OperationalError, InterfaceError, PoolTimeout, RedisError)
DEADLOCK_OR_SERIALIZATION = {"40P01", "40001"}
RETRY = Retry(max=6, interval=[1, 2, 5, 10, 20, 40])
JOB_TIMEOUT_SECONDS = 300
RESULT_TTL_SECONDS = 10
IN_PLACE_ATTEMPTS = 3


class BodyFailed(Exception):
    """A body could not be processed for a reason a retry may not fix; its event row says why."""


@dataclass
class Result:
    outcome: str
    applied: int = 0
    skipped: list[str] = field(default_factory=list)
    tenants: list[int] = field(default_factory=list)


def job_options(bodies: int) -> dict[str, object]:
    """How every processing job is enqueued, by the pump and when a body is split out."""
    return {
        "retry": RETRY,
        "timeout": JOB_TIMEOUT_SECONDS,
        "failure_ttl": 30 * 24 * 3600,
        # The outcome is in webhook_events; a job kept long would hold its bodies in Redis for nothing.
        # Not 0: rq 3.0 then deletes the job at once and fails on a job that was recovered after a kill.
        "result_ttl": RESULT_TTL_SECONDS,
        "description": f"process {bodies} webhook bodies",
    }


def process_bodies(bodies: list[bytes]) -> None:
    """Process each body; split failing ones into jobs of their own so a bad body never holds back others."""
    svc = services.current()
    job = get_current_job()
    job_id = job.id if job else None
    failed: list[bytes] = []
    done: list[str] = []
    try:
        for body in bodies:
            digest = body_digest(body)
            try:
                process_body(svc.db, svc.tenants, body, job_id)
            except TRANSIENT:
                raise
            except Exception as error:
                log.exception("body failed", extra={"event": digest[:16], "job": job_id})
                record_failure(svc.db, body, error, job_id)
                failed.append(body)
                continue
            done.append(digest)
    finally:
        svc.inbox.done(done)
    if failed and len(bodies) == 1:
        raise BodyFailed(f"body {body_digest(bodies[0])[:16]} failed; see its webhook_events row")
    if failed:
        _split_out(svc.queue, failed)


def _split_out(queue: Queue, bodies: list[bytes]) -> None:
    queue.enqueue_many([Queue.prepare_data(JOB_PATH, args=([b],), **job_options(1)) for b in bodies])
    log.warning("failed bodies split into jobs of their own", extra={"count": len(bodies)})


def process_body(db: Database, tenants: TenantDirectory, body: bytes, job_id: str | None) -> Result:
    """Parse and store one body in one transaction, retrying deadlocks and serialization failures in place."""
    envelope = parse(body)
    digest = body_digest(body)
    for attempt in range(1, IN_PLACE_ATTEMPTS + 1):
        try:
            with db.session() as session:
                result = _apply(session, tenants, envelope)
                session.execute(
                    _processed_event(dialect_of(session)),
                    {
                        "sha256": digest,
                        "body": body,
                        "outcome": result.outcome,
                        "notes": result.skipped or None,
                        "job_id": job_id,
                    },
                )
        except OperationalError as error:
            if _sqlstate(error) not in DEADLOCK_OR_SERIALIZATION or attempt == IN_PLACE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
            continue
        log.info(
            "body processed",
            extra={
                "event": digest[:16],
                "job": job_id,
                "tenant": result.tenants,
                "outcome": result.outcome,
                "count": result.applied,
            },
        )
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "pgcode", None)


def _apply(session: Session, tenants: TenantDirectory, envelope: Envelope) -> Result:
    numbers = {c.phone_number_id for c in envelope.changes if c.phone_number_id and c.update_count}
    tenant_of = tenants.resolve(session, numbers) if numbers else {}
    routed = Routed(messages=[], statuses=[])
    skipped = list(envelope.skipped)
    for change in envelope.changes:
        skipped += change.skipped
        if not change.update_count:
            continue
        tenant_id = tenant_of.get(change.phone_number_id or "")
        if tenant_id is None:
            why = (
                f"unknown phone_number_id {change.phone_number_id}"
                if change.phone_number_id
                else "no metadata"
            )
            skipped.append(f"{change.field} change ({why}): {change.update_count} updates not stored")
            continue
        routed.messages.extend((tenant_id, m) for m in change.messages)
        routed.statuses.extend((tenant_id, s) for s in change.statuses)
    deltas = DailyDeltas()
    store(session, routed, deltas)
    deltas.flush(session)
    applied = len(routed.messages) + len(routed.statuses)
    outcome = IGNORED if not applied else PARTIAL if skipped else PROCESSED
    tenant_ids = {t for t, _ in routed.messages} | {t for t, _ in routed.statuses}
    return Result(outcome, applied, skipped, sorted(tenant_ids))


@cache
def _processed_event(dialect: str) -> Insert:
    """Keep the body once per distinct body; a redelivery updates its outcome and counts the run."""
    table = WebhookEvent.__table__
    stmt = upsert(dialect, table).values(processed_at=func.now(), times_processed=1, error=None)
    return stmt.on_conflict_do_update(
        index_elements=["sha256"],
        set_={
            "last_received_at": func.now(),
            "processed_at": func.now(),
            "outcome": stmt.excluded.outcome,
            "notes": stmt.excluded.notes,
            "error": None,
            "job_id": stmt.excluded.job_id,
            "times_processed": table.c.times_processed + 1,
        },
    )


@cache
def _failed_event(dialect: str) -> Insert:
    table = WebhookEvent.__table__
    stmt = upsert(dialect, table).values(outcome=FAILED)
    return stmt.on_conflict_do_update(
        index_elements=["sha256"],
        set_={"outcome": FAILED, "error": stmt.excluded.error, "job_id": stmt.excluded.job_id},
    )


def record_failure(db: Database, body: bytes, error: BaseException, job_id: str | None) -> None:
    """Keep the body and why it failed, in a transaction of its own."""
    with db.session() as session:
        session.execute(
            _failed_event(dialect_of(session)),
            {
                "sha256": body_digest(body),
                "body": body,
                "error": f"{type(error).__name__}: {error}"[:4000],
                "job_id": job_id,
            },
        )
