"""Faults with real processes: workers SIGKILLed mid-job, several workers racing on redeliveries,
Redis and PostgreSQL restarting under load. Nothing acknowledged is lost and nothing counts twice."""

import hashlib
import random
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from cli.migrate import upgrade
from models import WebhookEvent, WhatsAppAnalytics, WhatsAppMessage
from models.db import Database
from runtime.config import WebConfig
from runtime.inbox import Inbox, InboxKeys
from tests import generate, tables
from tests.conftest import PAYLOADS, SECRET, Backend, empty_tables, make_pipeline, seed
from tests.processes import Workers, postgres_server, redis_server, wait_until
from webhook.app import create_app
from webhook.signature import sign

pytestmark = pytest.mark.slow


def _processed(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).where(WebhookEvent.processed_at.is_not(None))) or 0


def _day_totals(db: Database) -> dict[str, int]:
    with db.session() as session:
        row = session.execute(
            select(
                func.coalesce(func.sum(WhatsAppAnalytics.messages_received), 0),
                func.coalesce(func.sum(WhatsAppAnalytics.messages_sent), 0),
                func.coalesce(func.sum(WhatsAppAnalytics.messages_delivered), 0),
                func.coalesce(func.sum(WhatsAppAnalytics.messages_read), 0),
            )
        ).one()
    return dict(
        zip(("messages_received", "messages_sent", "messages_delivered", "messages_read"), row, strict=True)
    )


def _message_rows(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(WhatsAppMessage)) or 0


def _idle(queue: Queue) -> bool:
    """Nothing waiting, running or scheduled for retry."""
    inbox = InboxKeys(queue.name).inbox
    return (
        queue.connection.llen(inbox) == 0
        and queue.count == 0
        and queue.started_job_registry.count == 0
        and queue.scheduled_job_registry.count == 0
    )


@pytest.fixture
def workers(postgres_backend: Backend) -> Iterator[Workers]:
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    pool = Workers(
        {
            "DATABASE_URL": postgres_backend.db.engine.url.render_as_string(hide_password=False),
            "REDIS_URL": postgres_backend.redis_url,
            "WAHOOKS_QUEUE": queue,
        }
    )
    yield pool
    pool.stop_all()


def _queue(workers: Workers, connection: redis.Redis) -> Queue:
    return Queue(workers.env["WAHOOKS_QUEUE"], connection=connection)


def test_sigkilled_worker_mid_job_loses_nothing_and_counts_once(
    postgres_backend: Backend, workers: Workers
) -> None:
    seed(postgres_backend.db)
    batch = generate.bodies(400, messages_per_body=10, statuses_per_body=10)
    workers.env["WAHOOKS_BATCH_MAX_BODIES"] = "100"  # several jobs, so that the kill lands between commits
    queue = _queue(workers, postgres_backend.redis)
    inbox = Inbox(postgres_backend.redis, queue.name)
    for body in batch.bodies:
        assert inbox.push(body)
    (victim,) = workers.start(1)
    wait_until(
        lambda: queue.started_job_registry.count > 0 and _processed(postgres_backend.db) > 0, 60, "a job"
    )
    workers.kill(victim)
    killed_with = _processed(postgres_backend.db)
    workers.start(1)
    recovery = wait_until(
        lambda: _processed(postgres_backend.db) == len(batch.bodies) and _idle(queue), 90, "recovery"
    )
    print(f"killed after {killed_with} bodies; all {len(batch.bodies)} done {recovery:.1f} s after the kill")
    assert killed_with < len(batch.bodies), "the kill must land mid-way for this test to mean anything"
    assert _day_totals(postgres_backend.db) == batch.analytics
    assert _message_rows(postgres_backend.db) == batch.inbound + 10 * len(batch.bodies)
    assert queue.failed_job_registry.count == 0
    assert workers.errors() == [], "the recovered job must run once, cleanly"
    workers.assert_alive()


def test_four_workers_on_a_thrice_shuffled_corpus_equal_one_ordered_delivery(
    postgres_backend: Backend, workers: Workers
) -> None:
    bodies = [p.read_bytes() for p in sorted(PAYLOADS.rglob("*.json"))]
    seed(postgres_backend.db)
    make_pipeline(postgres_backend, queue=f"reference-{uuid.uuid4().hex[:6]}").replay(*bodies)
    reference = tables.snapshot(postgres_backend.db)

    empty_tables(postgres_backend.db)
    seed(postgres_backend.db)
    pipeline = make_pipeline(postgres_backend, queue=workers.env["WAHOOKS_QUEUE"])
    workers.start(4)
    rounds = [random.Random(seed_).sample(bodies, len(bodies)) for seed_ in (1, 2, 3)]
    for shuffled in rounds:
        pipeline.deliver(*shuffled)
        # Meta redelivers hours later: forget what is waiting so every copy reaches a worker.
        waiting = pipeline.services.redis.keys(InboxKeys(pipeline.services.queue.name).waiting("*"))
        if waiting:
            pipeline.services.redis.delete(*waiting)
    queue = pipeline.services.queue
    wait_until(lambda: _idle(queue), 120, "draining three deliveries with four workers")
    assert tables.snapshot(postgres_backend.db) == reference
    with postgres_backend.db.session() as session:
        assert min(session.scalars(select(WebhookEvent.times_processed))) >= 3
    assert queue.failed_job_registry.count == 0
    assert workers.errors() == []
    workers.assert_alive()


def _all_processed(db: Database, bodies: list[bytes]) -> bool:
    digests = {hashlib.sha256(b).hexdigest() for b in bodies}
    with db.session() as session:
        done = set(
            session.scalars(
                select(WebhookEvent.sha256).where(
                    WebhookEvent.sha256.in_(digests), WebhookEvent.processed_at.is_not(None)
                )
            )
        )
    return done == digests


def test_redis_restart_under_load_loses_nothing_acknowledged(postgres_backend: Backend) -> None:
    seed(postgres_backend.db)
    batch = generate.bodies(300)
    queue_name = f"redis-restart-{uuid.uuid4().hex[:6]}"
    with redis_server() as server:
        config = WebConfig(redis_url=server.url, app_secrets=(SECRET,), verify_token="t", queue=queue_name)
        client = create_app(config).test_client()
        pool = Workers(
            {
                "DATABASE_URL": postgres_backend.db.engine.url.render_as_string(hide_password=False),
                "REDIS_URL": server.url,
                "WAHOOKS_QUEUE": queue_name,
            }
        )
        pool.start(2)
        try:
            acknowledged, refused = [], 0
            for n, body in enumerate(batch.bodies):
                if n == 100:
                    server.kill()
                    outage_ends = time.monotonic() + 2
                if (
                    n >= 100
                    and server.process
                    and server.process.poll() is not None
                    and time.monotonic() > outage_ends
                ):
                    server.start()
                headers = {"X-Hub-Signature-256": sign(SECRET, body)}
                status = client.post("/webhook", data=body, headers=headers).status_code
                assert status in (200, 503)
                if status == 200:
                    acknowledged.append(body)
                else:
                    refused += 1
                    time.sleep(0.02)
            assert refused, "the outage must refuse some posts for this test to mean anything"
            queue = Queue(queue_name, connection=redis.Redis.from_url(server.url))
            wait_until(
                lambda: _all_processed(postgres_backend.db, acknowledged) and _idle(queue),
                120,
                "drain after restart",
            )
            processed = _processed(postgres_backend.db)
            print(f"{len(acknowledged)} acknowledged, {refused} refused with 503, {processed} processed")
            assert _day_totals(postgres_backend.db) == generate.bodies(processed).analytics
            pool.assert_alive()
        finally:
            pool.stop_all()


def test_postgres_restart_under_load_loses_nothing(redis_url: str) -> None:
    with postgres_server() as server:
        upgrade(server.url)
        db = Database(server.url)
        seed(db)
        connection = redis.Redis.from_url(redis_url)
        queue = Queue(f"pg-restart-{uuid.uuid4().hex[:6]}", connection=connection)
        batch = generate.bodies(600, messages_per_body=10, statuses_per_body=10)
        inbox = Inbox(connection, queue.name)
        for body in batch.bodies:
            assert inbox.push(body)
        pool = Workers({"DATABASE_URL": server.url, "REDIS_URL": redis_url, "WAHOOKS_QUEUE": queue.name})
        pool.start(2)
        try:
            wait_until(lambda: _processed(db) > 20, 60, "processing to start")
            server.ctl("restart", "-m", "fast")
            restarted_at = _processed_or_none(db)
            wait_until(lambda: _processed_or_none(db) == len(batch.bodies) and _idle(queue), 120, "drain")
            print(f"PostgreSQL restarted after ~{restarted_at} bodies; all {len(batch.bodies)} processed")
            assert _day_totals(db) == batch.analytics
            assert _message_rows(db) == batch.inbound + 10 * len(batch.bodies)
            assert queue.failed_job_registry.count == 0
            pool.assert_alive()
        finally:
            pool.stop_all()
            db.dispose()
            for key in connection.scan_iter("*pg-restart*"):
                connection.delete(key)


def _processed_or_none(db: Database) -> int | None:
    try:
        return _processed(db)
    except OperationalError:
        return None
