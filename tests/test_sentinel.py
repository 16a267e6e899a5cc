"""REDIS_URL's Sentinel form: the web and the workers follow a failover by themselves, on real servers.

A primary and a replica (each with an fsync-always append-only file, as production runs Redis) and
three Sentinels on loopback; the primary is SIGKILLed under load.
"""

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from runtime.config import ConfigError, SentinelAddress, WebConfig, redis_url, sentinel_address
from runtime.inbox import InboxKeys
from runtime.redis_client import web_client, worker_client
from tests.conftest import SECRET, VERIFY_TOKEN
from tests.services import skip_or_fail
from throwaway import Child, free_port, start, stop_all, wait_until
from webhook.app import create_app
from webhook.signature import sign

PRIMARY_NAME = "wahooks"
QUEUE = "sentinel-test"
# Sentinel's default is 30 s; a test cannot wait that long, and production should set its own.
DOWN_AFTER_MS = 1000


@dataclass
class SentinelGroup:
    primary: Child
    primary_port: int
    replica_port: int
    url: str


def _redis(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)


def _replicated(sentinel_ports: list[int], replica_port: int) -> bool:
    try:
        linked = _redis(replica_port).info("replication")["master_link_status"] == "up"
        return linked and all(_redis(port).sentinel_slaves(PRIMARY_NAME) for port in sentinel_ports)
    except redis.RedisError:
        return False


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (apt-get install -y redis-server)")
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    durable = ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--bind", "127.0.0.1"]
    children: list[Child] = []
    try:
        for name, port, extra in [
            ("primary", primary_port, []),
            ("replica", replica_port, ["--replicaof", "127.0.0.1", str(primary_port)]),
        ]:
            (tmp_path / name).mkdir()
            argv = ["redis-server", "--port", str(port), "--dir", str(tmp_path / name), *durable, *extra]
            children.append(start(name, argv, {}, tmp_path / f"{name}.log"))
        for n, port in enumerate(sentinel_ports):
            conf = tmp_path / f"sentinel-{n}.conf"  # Sentinel rewrites its file as it learns
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                f"sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {PRIMARY_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {PRIMARY_NAME} 10000\n"
            )
            children.append(
                start(
                    f"sentinel-{n}", ["redis-server", str(conf), "--sentinel"], {}, conf.with_suffix(".log")
                )
            )
        wait_until(
            lambda: _replicated(sentinel_ports, replica_port), 30, "the replica known to every Sentinel"
        )
        hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel_ports)
        yield SentinelGroup(
            children[0], primary_port, replica_port, f"redis+sentinel://{hosts}/{PRIMARY_NAME}/0"
        )
    finally:
        stop_all(children, grace_seconds=5)


def _post(client: FlaskClient, body: bytes) -> int:
    return client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)}).status_code


def test_the_web_answers_503_only_during_a_failover_and_the_workers_client_follows_it(
    sentinel_group: SentinelGroup,
) -> None:
    config = WebConfig(sentinel_group.url, (SECRET,), VERIFY_TOKEN, queue=QUEUE)
    client = create_app(config).test_client()
    worker_redis = worker_client(sentinel_group.url)
    assert worker_redis.ping()

    answers: list[tuple[bytes, int]] = []
    killed_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = b'{"object":"whatsapp_business_account","n":%d}' % len(answers)
        answers.append((body, _post(client, body)))
        if len(answers) == 200:
            sentinel_group.primary.kill()
            killed_at = len(answers)
        recovered = [status for _, status in answers[killed_at or len(answers) :]]
        if 503 in recovered and recovered[-200:] == [200] * 200:
            break
    statuses = [status for _, status in answers]
    assert set(statuses) <= {200, 503}, "a failover answers 503 (Meta delivers again), never 500"
    assert killed_at is not None and 503 in statuses[killed_at:], "the kill was noticed"
    assert statuses[-200:] == [200] * 200, "200s again after the failover, without a restart"

    promoted = _redis(sentinel_group.replica_port)
    assert promoted.info("replication")["role"] == "master"
    inbox = set(promoted.lrange(InboxKeys(QUEUE).inbox, 0, -1))
    first_503 = statuses.index(503)
    after = [body for body, status in answers[first_503:] if status == 200]
    assert set(after) <= inbox, "every body answered 200 after the failover began is on the new primary"
    # The worker's client, made before the failover, reaches the new primary by itself.
    assert worker_redis.llen(InboxKeys(QUEUE).inbox) == len(inbox)


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
