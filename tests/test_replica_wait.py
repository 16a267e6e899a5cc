"""WAHOOKS_REDIS_WAIT_REPLICAS: a body is answered 200 only once a replica holds it, else 503.

A real primary and replica on loopback; the replica is frozen (SIGSTOP) to stand for one that lags
or is gone: its connection stays open and it acknowledges nothing.
"""

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from runtime.config import (
    MAX_REDIS_WAIT_TIMEOUT_MS,
    ConfigError,
    ReplicaWait,
    WebConfig,
    replica_wait,
)
from runtime.inbox import Inbox, InboxKeys, TooFewReplicas
from runtime.redis_client import WEB_TIMEOUT_SECONDS, web_client
from tests.conftest import SECRET, VERIFY_TOKEN
from tests.services import skip_or_fail
from throwaway import ReplicatedRedis, Unavailable, replicated_redis
from webhook.app import create_app
from webhook.signature import sign

pytestmark = pytest.mark.slow
QUEUE = "replica-wait-test"
WAIT = ReplicaWait(replicas=1, timeout_ms=100)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    try:
        with replicated_redis(tmp_path, sentinels=False) as group:
            yield group
    except Unavailable as missing:
        skip_or_fail(str(missing))


@contextmanager
def frozen(pair: ReplicatedRedis) -> Iterator[None]:
    pair.replicas[0].signal_group(signal.SIGSTOP)
    try:
        yield
    finally:
        pair.replicas[0].signal_group(signal.SIGCONT)


def replica_holds(pair: ReplicatedRedis) -> list[bytes]:
    return redis.Redis(port=pair.replica_ports[0]).lrange(InboxKeys(QUEUE).inbox, 0, -1)


def test_an_answered_push_is_on_the_replica_already(pair: ReplicatedRedis) -> None:
    push_many = Inbox(web_client(pair.url), QUEUE).single_caller_push(WAIT)
    for n in range(50):  # read at once after each answer: no time for replication to catch up unasked
        assert push_many([b'{"n":%d}' % n, b'{"n":0}']) == [True, False]
        assert replica_holds(pair)[0] == b'{"n":%d}' % n


def test_a_push_no_replica_acknowledges_raises_and_the_connection_stays_in_step(
    pair: ReplicatedRedis,
) -> None:
    push_many = Inbox(web_client(pair.url), QUEUE).single_caller_push(WAIT)
    with frozen(pair):
        began = time.monotonic()
        with pytest.raises(TooFewReplicas, match="0 of 1"):
            push_many([b'{"n":1}'])
        assert time.monotonic() - began >= WAIT.timeout_ms / 1000, "WAIT waited its timeout"
    # The body did reach the primary: Meta's redelivery is a duplicate, acknowledged once replicated.
    assert push_many([b'{"n":1}', b'{"n":2}']) == [False, True]
    assert replica_holds(pair) == [b'{"n":2}', b'{"n":1}']


def test_a_duplicate_is_acknowledged_only_once_its_first_push_is_replicated(pair: ReplicatedRedis) -> None:
    """The first push's WAIT failed; the redelivery comes on another connection (another web process),
    which has written nothing before, so a WAIT there covers the first push only if the duplicate's
    push writes too."""
    inbox = Inbox(web_client(pair.url), QUEUE)
    with frozen(pair):
        with pytest.raises(TooFewReplicas):
            inbox.single_caller_push(WAIT)([b'{"n":1}'])
        with pytest.raises(TooFewReplicas):
            inbox.single_caller_push(WAIT)([b'{"n":1}'])


def test_a_forgotten_script_is_sent_again_with_its_wait(pair: ReplicatedRedis) -> None:
    push_many = Inbox(web_client(pair.url), QUEUE).single_caller_push(WAIT)
    assert push_many([b'{"n":1}']) == [True]
    redis.Redis(port=pair.primary_port).script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
    assert push_many([b'{"n":2}']) == [True]
    assert push_many([b'{"n":3}', b'{"n":1}']) == [True, False]
    assert replica_holds(pair) == [b'{"n":3}', b'{"n":2}', b'{"n":1}']


def test_the_web_answers_503_while_no_replica_acknowledges(pair: ReplicatedRedis) -> None:
    config = WebConfig(pair.url, (SECRET,), VERIFY_TOKEN, queue=QUEUE, replica_wait=WAIT)
    client = create_app(config).test_client()
    body = b'{"object":"whatsapp_business_account"}'
    headers = {"X-Hub-Signature-256": sign(SECRET, body)}
    with frozen(pair):
        assert client.post("/webhook", data=body, headers=headers).status_code == 503
    answer = client.post("/webhook", data=body, headers=headers)
    assert (answer.status_code, answer.json) == (200, {"queued": False})
    assert replica_holds(pair) == [body]


@pytest.mark.parametrize(
    ("env", "wait"),
    [
        ({}, None),
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "1"}, ReplicaWait(1, 100)),
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "2", "WAHOOKS_REDIS_WAIT_TIMEOUT_MS": "250"}, ReplicaWait(2, 250)),
    ],
)
def test_the_replica_wait_is_read_from_the_environment(env: dict[str, str], wait: ReplicaWait | None) -> None:
    assert replica_wait(env) == wait


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "0"}, "WAHOOKS_REDIS_WAIT_REPLICAS"),
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "one"}, "WAHOOKS_REDIS_WAIT_REPLICAS"),
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "1", "WAHOOKS_REDIS_WAIT_TIMEOUT_MS": "0"}, "_TIMEOUT_MS"),
        ({"WAHOOKS_REDIS_WAIT_REPLICAS": "1", "WAHOOKS_REDIS_WAIT_TIMEOUT_MS": "401"}, "_TIMEOUT_MS"),
        ({"WAHOOKS_REDIS_WAIT_TIMEOUT_MS": "100"}, "WAHOOKS_REDIS_WAIT_REPLICAS is not"),
    ],
)
def test_a_bad_replica_wait_fails_at_start_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        replica_wait(env)


def test_the_longest_wait_answers_before_the_web_client_gives_up() -> None:
    assert MAX_REDIS_WAIT_TIMEOUT_MS < WEB_TIMEOUT_SECONDS * 1000
