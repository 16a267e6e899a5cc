"""What the status page shows, read from Redis and the database at each request."""

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from io import BytesIO

from rq import Queue, Worker
from sqlalchemy import func, or_, select

from cli import analytics, failures
from cli.doctor import LAG_FAIL_SECONDS, LAG_WARN_SECONDS, oldest_wait_seconds
from models import WebhookEvent, WhatsAppAnalytics
from models.db import Database
from models.events import FAILED
from runtime.inbox import Inbox

# (label, minutes): the windows the intake panel counts bodies over.
INTAKE_WINDOWS = (("last minute", 1), ("last 5 minutes", 5), ("last hour", 60))
FAILED_SHOWN = 50  # the page lists this many failed jobs; the count says how many there are
BODIES_SHOWN = 20
DEFAULT_CHART_DAYS = 30
MAX_CHART_DAYS = 366
# matplotlib's figures are not documented as safe to draw from several threads at once, and the web
# server runs requests on a pool of threads: one chart at a time.
_drawing = threading.Lock()


@dataclass(frozen=True)
class IntakeWindow:
    label: str
    minutes: int
    received: int  # new bodies stored in the window
    processed: int  # bodies processed in the window (reprocessed ones too)

    @property
    def per_minute(self) -> float:
        return self.received / self.minutes


def intake(db: Database) -> list[IntakeWindow]:
    """Bodies received and processed in each window, from webhook_events (one query).

    A body is counted when a worker stores it, within tens of milliseconds of its POST unless the workers
    fall behind; the queue panel shows what still waits. A body received in a window was processed since,
    or failed: the indexed processed_at and outcome bound the scan.
    """
    now = datetime.now(UTC)
    since = {minutes: now - timedelta(minutes=minutes) for _, minutes in INTAKE_WINDOWS}
    columns = [
        func.count().filter(column >= since[minutes])
        for _, minutes in INTAKE_WINDOWS
        for column in (WebhookEvent.received_at, WebhookEvent.processed_at)
    ]
    recent = or_(WebhookEvent.processed_at >= min(since.values()), WebhookEvent.outcome == FAILED)
    with db.session() as session:
        counts = session.execute(select(*columns).where(recent)).one()
    return [
        IntakeWindow(label, minutes, counts[2 * i], counts[2 * i + 1])
        for i, (label, minutes) in enumerate(INTAKE_WINDOWS)
    ]


@dataclass(frozen=True)
class WorkerState:
    name: str
    state: str
    current_job: str | None
    last_heartbeat: datetime | None
    successful: int
    failed: int


@dataclass(frozen=True)
class QueueState:
    name: str
    inbox: int  # bodies the web pushed that no job holds yet
    queued: int  # jobs waiting for a worker
    running: int
    scheduled: int  # jobs waiting for their retry
    failed: int
    oldest_wait: float | None  # seconds the oldest waiting body has waited; None: nothing waits
    workers: list[WorkerState]

    @property
    def lag_status(self) -> str:
        """ok, warn or fail, by `wahooks doctor`'s thresholds."""
        if self.oldest_wait is None or self.oldest_wait < LAG_WARN_SECONDS:
            return "ok"
        return "fail" if self.oldest_wait >= LAG_FAIL_SECONDS else "warn"


def queue_state(queue: Queue) -> QueueState:
    return QueueState(
        name=queue.name,
        inbox=Inbox(queue.connection, queue.name).depth(),
        queued=queue.count,
        running=queue.started_job_registry.count,
        scheduled=queue.scheduled_job_registry.count,
        failed=queue.failed_job_registry.count,
        oldest_wait=oldest_wait_seconds(queue),
        workers=[
            WorkerState(
                name=worker.name,
                state=str(worker.get_state()),
                current_job=worker.get_current_job_id(),
                last_heartbeat=worker.last_heartbeat,
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
            )
            for worker in sorted(Worker.all(queue=queue), key=lambda w: w.name)
        ],
    )


@dataclass(frozen=True)
class StoredBody:
    """A webhook_events row, without the body itself."""

    id: int
    digest: str
    size: int
    received_at: datetime
    processed_at: datetime | None
    times_processed: int
    outcome: str | None
    notes: list[str] | None
    error: str | None


# StoredBody's fields, by name.
_STORED_BODY = select(
    WebhookEvent.id,
    WebhookEvent.sha256.label("digest"),
    func.length(WebhookEvent.body).label("size"),
    WebhookEvent.received_at,
    WebhookEvent.processed_at,
    WebhookEvent.times_processed,
    WebhookEvent.outcome,
    WebhookEvent.notes,
    WebhookEvent.error,
)


def last_bodies(db: Database, count: int = BODIES_SHOWN) -> list[StoredBody]:
    """The bodies stored last, newest first, whatever their outcome (a failed one has no processed_at)."""
    query = _STORED_BODY.order_by(WebhookEvent.id.desc()).limit(count)
    with db.session() as session:
        return [StoredBody(**row._asdict()) for row in session.execute(query)]


@dataclass(frozen=True)
class Failure:
    """A failed job, and the webhook_events rows of its bodies: their own errors say why."""

    job: failures.FailedJob
    bodies: list[StoredBody]


def failed(db: Database, queue: Queue, limit: int = FAILED_SHOWN) -> list[Failure]:
    jobs = failures.failed_jobs(queue, limit)
    digests = {digest for job in jobs for digest in job.digests}
    with db.session() as session:
        rows = session.execute(_STORED_BODY.where(WebhookEvent.sha256.in_(digests))).all()
    by_digest = {row.digest: StoredBody(**row._asdict()) for row in rows}
    return [Failure(job, [by_digest[d] for d in job.digests if d in by_digest]) for job in jobs]


def chart_range(db: Database, tenant_id: int, days: int) -> tuple[date, date]:
    """The `days` days that end with the tenant's last stored day (today when it has none)."""
    with db.session() as session:
        last = session.scalar(
            select(func.max(WhatsAppAnalytics.date)).where(WhatsAppAnalytics.tenant_id == tenant_id)
        )
    until = last or datetime.now(UTC).date()
    return until - timedelta(days=days - 1), until


def chart_png(db: Database, phone_number_id: str, days: int) -> bytes:
    """The tenant's `wahooks analytics --chart`, as PNG bytes; TenantError for an unknown number."""
    from cli import charts  # matplotlib, loaded with the first chart

    (tenant,) = analytics.select_tenants(db, phone_number_id)
    since, until = chart_range(db, tenant.id, days)
    result = analytics.report(db, phone_number_id, since, until)
    out = BytesIO()
    with _drawing:
        charts.figure(result.series[0], result.since, result.until).savefig(out, format="png", dpi=100)
    return out.getvalue()
