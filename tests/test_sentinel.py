"""REDIS_URL's Sentinel form: the web and the workers follow a failover by themselves, on real servers.

A primary and a replica (each with an fsync-always append-only file, as production runs Redis) and
three Sentinels on loopback; the primary is SIGKILLed under load.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import func, select

from models import WebhookEvent, WhatsAppAnalytics, WhatsAppMessage
from models.db import Database
from runtime.config import ConfigError, ReplicaWait, SentinelAddress, WebConfig, redis_url, sentinel_address
from runtime.inbox import InboxKeys, body_digest
from runtime.redis_client import web_client, worker_client
from tests import generate
from tests.conftest import SECRET, VERIFY_TOKEN, Backend, seed
from tests.processes import Workers
from tests.services import skip_or_fail
from tests.test_faults import _idle
from throwaway import ReplicatedRedis, Unavailable, free_port, replicated_redis, wait_until
from webhook.app import create_app
from webhook.signature import sign

QUEUE = "sentinel-test"


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    try:
        with replicated_redis(tmp_path) as group:
            yield group
    except Unavailable as missing:
        skip_or_fail(str(missing))


@pytest.fixture
def two_replicas(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    """A replica is left to acknowledge WAIT once the other one is promoted."""
    try:
        with replicated_redis(tmp_path, replicas=2) as group:
            yield group
    except Unavailable as missing:
        skip_or_fail(str(missing))


def _post(client: FlaskClient, body: bytes) -> int:
    return client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}).status_code


def _post_through_a_failover(
    client: FlaskClient, kill: Callable[[], None], body: Callable[[int], bytes]
) -> list[tuple[bytes, int]]:
    """Distinct bodies, posted one after another; `kill` (the primary) after the 200th answer, posting
    stopped once 200 answers in a row are 200 again after a 503 (or after a minute)."""
    answers: list[tuple[bytes, int]] = []
    killed_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        payload = body(len(answers))
        answers.append((payload, _post(client, payload)))
        if len(answers) == 200:
            kill()
            killed_at = len(answers)
        recovered = [status for _, status in answers[killed_at or len(answers) :]]
        if 503 in recovered and recovered[-200:] == [200] * 200:
            break
    statuses = [status for _, status in answers]
    assert set(statuses) <= {200, 503}, "a failover answers 503 (Meta delivers again), never 500"
    assert killed_at is not None and 503 in statuses[killed_at:], "the kill was noticed"
    assert statuses[-200:] == [200] * 200, "200s again after the failover, without a restart"
    return answers


@pytest.mark.slow
def test_the_web_answers_503_only_during_a_failover_and_the_workers_client_follows_it(
    sentinel_group: ReplicatedRedis,
) -> None:
    config = WebConfig(sentinel_group.url, (SECRET,), VERIFY_TOKEN, queue=QUEUE)
    client = create_app(config).test_client()
    worker_redis = worker_client(sentinel_group.url)
    assert worker_redis.ping()

    answers = _post_through_a_failover(
        client, sentinel_group.primary.kill, lambda n: b'{"object":"whatsapp_business_account","n":%d}' % n
    )

    promoted = sentinel_group.promoted()
    assert promoted is not None
    inbox = set(promoted.lrange(InboxKeys(QUEUE).inbox, 0, -1))
    first_503 = [status for _, status in answers].index(503)
    after = [body for body, status in answers[first_503:] if status == 200]
    assert set(after) <= inbox, "every body answered 200 after the failover began is on the new primary"
    # The worker's client, made before the failover, reaches the new primary by itself.
    assert worker_redis.llen(InboxKeys(QUEUE).inbox) == len(inbox)


def _one_message(n: int) -> bytes:
    return generate.bodies(1, messages_per_body=1, statuses_per_body=0, start=n).bodies[0]


def _stored(db: Database) -> set[str]:
    """The digests of the bodies stored."""
    with db.session() as session:
        return set(session.scalars(select(WebhookEvent.sha256).where(WebhookEvent.processed_at.is_not(None))))


def _counts(db: Database) -> tuple[int, int, int]:
    """Bodies stored, message rows, and the messages the analytics count, in one statement (one snapshot:
    a worker's commit between two reads would make them differ)."""
    with db.session() as session:
        row = session.execute(
            select(
                select(func.count()).where(WebhookEvent.processed_at.is_not(None)).scalar_subquery(),
                select(func.count()).select_from(WhatsAppMessage).scalar_subquery(),
                select(func.coalesce(func.sum(WhatsAppAnalytics.messages_received), 0)).scalar_subquery(),
            )
        ).one()
    return row[0], row[1], row[2]


@pytest.mark.slow
def test_workers_follow_a_failover_and_store_every_body_answered_200_once(
    two_replicas: ReplicatedRedis, postgres_backend: Backend
) -> None:
    """Real `wahooks worker` processes, the web with WAHOOKS_REDIS_WAIT_REPLICAS=1; nothing restarted."""
    db = postgres_backend.db
    seed(db)
    queue = f"sentinel-{uuid.uuid4().hex[:8]}"
    database_url = db.engine.url.render_as_string(hide_password=False)
    workers = Workers({"DATABASE_URL": database_url, "REDIS_URL": two_replicas.url, "WAHOOKS_QUEUE": queue})
    try:
        workers.start(2)
        config = WebConfig(
            two_replicas.url, (SECRET,), VERIFY_TOKEN, queue=queue, replica_wait=ReplicaWait(1, 100)
        )
        client = create_app(config).test_client()
        stored_before_the_kill = []

        rq_queue = Queue(queue, connection=worker_client(two_replicas.url))

        def kill() -> None:
            print(f"at the kill: {rq_queue.connection.llen(InboxKeys(queue).inbox)} bodies in the inbox")
            wait_until(lambda: bool(_stored(db)), 30, "the workers storing bodies")
            stored_before_the_kill.append(len(_stored(db)))
            two_replicas.primary.kill()

        answers = _post_through_a_failover(client, kill, _one_message)
        accepted = {body_digest(body) for body, status in answers if status == 200}
        wait_until(lambda: accepted <= _stored(db) and _idle(rq_queue), 60, "every body answered 200 stored")
        stored, messages, counted = _counts(db)
        print(f"{len(accepted)} answered 200, {stored} stored; {len(workers.errors())} error lines logged")
        # A body answered 503 may be stored too (its push reached the primary): Meta's redelivery of it
        # is a duplicate. Each stored body holds one message, stored and counted once.
        assert stored == messages == counted
        assert 0 < stored_before_the_kill[0] < stored, "stored from both primaries"
        workers.assert_alive()
    finally:
        for child in workers.children:  # shown when the test fails
            print(f"{child.name}, {'alive' if child.alive() else 'exited'}:\n{child.log_tail()}")
        workers.stop_all()


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (
            "redis+sentinel://a:26380,b,[::1]:26381/main/2",
            SentinelAddress((("a", 26380), ("b", 26379), ("::1", 26381)), "main", 2, None, None),
        ),
        (
            "redis+sentinel://:p%40ss@a/main",
            SentinelAddress((("a", 26379),), "main", 0, None, "p@ss"),
        ),
        ("redis+sentinel://user:pw@a:1/main/0", SentinelAddress((("a", 1),), "main", 0, "user", "pw")),
        ("redis://h:6379/0", None),
    ],
)
def test_the_sentinel_form_of_redis_url_is_parsed(url: str, address: SentinelAddress | None) -> None:
    assert sentinel_address(url) == address


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://a:26379",
        "redis+sentinel:///main",
        "redis+sentinel://a:port/main",
        "redis+sentinel://a:0/main",
        "redis+sentinel://a/main/zero",
        "redis+sentinel://a/main/0/extra",
    ],
)
def test_a_malformed_sentinel_url_fails_at_start_naming_redis_url(url: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        redis_url({"REDIS_URL": url})


def test_the_sentinel_address_never_shows_its_password() -> None:
    address = sentinel_address("redis+sentinel://:hunter2-secret@a/main")
    assert address is not None and "hunter2-secret" not in repr(address)


def test_a_client_of_a_sentinel_url_is_made_without_reaching_it() -> None:
    """Clients connect lazily: a web process starts (and answers 503) while Sentinel is unreachable."""
    client = web_client(f"redis+sentinel://127.0.0.1:{free_port()}/main")
    with pytest.raises(redis.RedisError):
        client.ping()
