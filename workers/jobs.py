"""The RQ job: process a batch of webhook bodies in one transaction, exactly once in effect."""

import logging
import time
from collections import Counter

from rq import Queue, Retry, get_current_job
from rq.queue import EnqueueData

from models import LIVE
from models.db import Database
from models.events import FAILED
from runtime.inbox import JOB_PATH, body_digest
from runtime.logs import error_summary
from workers import metrics, services
from workers.batch import Body, Failure, Written, record_failure, write
from workers.tenants import TenantDirectory

log = logging.getLogger(__name__)

RETRY = Retry(max=6, interval=[1, 2, 5, 10, 20, 40])
JOB_TIMEOUT_SECONDS = 300
RESULT_TTL_SECONDS = 10


class BodyFailed(Exception):
    """A body could not be processed for a reason a retry may not fix; its event row says why."""


def job_data(bodies: list[bytes]) -> EnqueueData:
    """How every processing job is enqueued: by the pump, and when a failing body is split out."""
    return Queue.prepare_data(
        JOB_PATH,
        args=(bodies,),
        retry=RETRY,
        timeout=JOB_TIMEOUT_SECONDS,
        failure_ttl=30 * 24 * 3600,
        # The outcome is in webhook_events; a job kept long would hold its bodies in Redis for nothing.
        # Not 0: rq 3.0 then deletes the job at once and fails on a job that was recovered after a kill.
        result_ttl=RESULT_TTL_SECONDS,
        description=f"process {len(bodies)} webhook bodies",
    )


def process_bodies(bodies: list[bytes]) -> None:
    """Process a batch; a body that fails alone is split into a job of its own, never failing the rest."""
    svc = services.current()
    job = get_current_job()
    job_id = job.id if job else None
    started = time.monotonic()
    written = process(svc.db, svc.tenants, bodies, job_id)
    svc.inbox.done(list(written.outcomes))
    seconds = time.monotonic() - started
    _log_summary(written, job_id, seconds)
    metrics.count_batch(
        [*(r.outcome for r in written.outcomes.values()), *(FAILED for _ in written.failures)], seconds
    )
    if written.failures and len(bodies) == 1:
        raise BodyFailed(f"body {written.failures[0].digest[:16]} failed; see its webhook_events row")
    if written.failures:
        svc.queue.enqueue_many([job_data([f.body]) for f in written.failures])
        log.warning("failed bodies split into jobs of their own", extra={"count": len(written.failures)})


def process(db: Database, tenants: TenantDirectory, bodies: list[bytes], job_id: str | None) -> Written:
    """Parse and write bodies (each distinct body once); record why each failing body failed."""
    parsed: list[Body] = []
    unparsable: list[Failure] = []
    copies = Counter(bodies)
    for raw, count in copies.items():
        try:
            parsed.append(Body.parse(raw, count))
        except Exception as error:
            unparsable.append(Failure(raw, body_digest(raw), error))
    written = write(db, tenants, parsed, job_id) if parsed else Written()
    written.failures += unparsable
    for failure in written.failures:
        log.error(
            "body failed: %s; its webhook_events row has the whole error",
            error_summary(failure.error),
            extra={"event": failure.digest[:16], "job": job_id},
        )
        record_failure(db, failure, job_id)
    _measure_events(parsed, written)
    return written


def _measure_events(parsed: list[Body], written: Written) -> None:
    """Count the events of the bodies just written or failed, and the lag of those written."""
    by_digest = {body.digest: body for body in parsed}
    events: Counter[str] = Counter()
    for digest, result in written.outcomes.items():
        changes = by_digest[digest].envelope.changes
        events["applied"] += result.applied
        events["set_aside"] += sum(c.item_count for c in changes) - result.applied
        # Imported history is months old by design: it says nothing of this service's lag.
        metrics.observe_lag(m.timestamp for c in changes for m in c.messages if m.source == LIVE)
        metrics.observe_lag(s.timestamp for c in changes for s in c.statuses)
    for failure in written.failures:
        failed = by_digest.get(failure.digest)  # None: the body did not even parse
        events["failed"] += sum(c.item_count for c in failed.envelope.changes) if failed else 0
    for outcome, count in events.items():
        metrics.count_events(outcome, count)


def _log_summary(written: Written, job_id: str | None, seconds: float) -> None:
    """One line per job at INFO; a line per body at DEBUG, built only when it is shown."""
    for digest, result in written.outcomes.items() if log.isEnabledFor(logging.DEBUG) else ():
        log.debug(
            "body processed",
            extra={
                "event": digest[:16],
                "job": job_id,
                "tenant": sorted(result.tenants),
                "outcome": result.outcome,
                "count": result.applied,
            },
        )
    outcomes = Counter(r.outcome for r in written.outcomes.values())
    outcomes.update({"failed": len(written.failures)} if written.failures else {})
    log.info(
        "bodies processed in %.0f ms: %s",
        seconds * 1000,
        ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())),
        extra={
            "job": job_id,
            "tenant": sorted({t for r in written.outcomes.values() for t in r.tenants}),
            "count": sum(r.applied for r in written.outcomes.values()),
        },
    )
