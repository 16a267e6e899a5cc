"""`wahooks failed | requeue-failed | reprocess`: seeing and recovering what did not go through."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from rq import Queue
from rq.job import Job
from sqlalchemy import select

from models import WebhookEvent
from models.db import Database
from models.events import PROCESSED
from runtime.inbox import body_digest
from workers.jobs import process
from workers.tenants import TenantDirectory


@dataclass(frozen=True)
class FailedJob:
    id: str
    digests: tuple[str, ...]  # each body's SHA-256, the key of its webhook_events row
    ended_at: datetime | None
    error: str

    @property
    def bodies(self) -> int:
        return len(self.digests)


def failed_jobs(queue: Queue, limit: int | None = None) -> list[FailedJob]:
    """The jobs in the failed registry (the first `limit` of them), with the last line of each error."""
    registry = queue.failed_job_registry
    ids = registry.get_job_ids(0, -1 if limit is None else limit - 1)
    jobs = Job.fetch_many(ids, connection=queue.connection)
    return [
        FailedJob(
            id=job.id,
            digests=tuple(body_digest(body) for body in job.args[0]) if job.args else (),
            ended_at=job.ended_at,
            error=(job.exc_info or "").strip().splitlines()[-1:][0] if job.exc_info else "",
        )
        for job in jobs
        if job is not None
    ]


def requeue(queue: Queue, job_ids: list[str] | None) -> int:
    """Put failed jobs back on the queue (all of them when no ids are given)."""
    registry = queue.failed_job_registry
    ids = job_ids if job_ids else registry.get_job_ids()
    for job_id in ids:
        registry.requeue(job_id)
    return len(ids)


def _pages(
    db: Database, include_processed: bool, since: datetime | None, page: int = 100
) -> Iterator[list[bytes]]:
    """Stored bodies in arrival order, a page at a time so a large table never sits in memory."""
    last_id = 0
    while True:
        query = select(WebhookEvent.id, WebhookEvent.body).where(WebhookEvent.id > last_id)
        if not include_processed:
            query = query.where((WebhookEvent.outcome != PROCESSED) | WebhookEvent.outcome.is_(None))
        if since is not None:
            query = query.where(WebhookEvent.received_at >= since)
        with db.session() as session:
            rows = session.execute(query.order_by(WebhookEvent.id).limit(page)).all()
        if not rows:
            return
        last_id = rows[-1][0]
        yield [body for _, body in rows]


def reprocess(
    db: Database, tenants: TenantDirectory, include_processed: bool = False, since: datetime | None = None
) -> Counter[str]:
    """Run stored bodies through processing again; idempotent, so rows already stored are never doubled."""
    outcomes: Counter[str] = Counter()
    for bodies in _pages(db, include_processed, since):
        # A page is written like a job's batch; a bad body fails alone and its row records why.
        written = process(db, tenants, bodies, job_id=None)
        outcomes.update(result.outcome for result in written.outcomes.values())
        outcomes.update(f"error: {type(f.error).__name__}" for f in written.failures)
    return outcomes
