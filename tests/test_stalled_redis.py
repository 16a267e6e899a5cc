"""The Procfile's web process while its Redis stalls (SIGSTOP: connections stay open, nothing answers).

Every request is still answered within a second, a 503 that Meta delivers again later, and the process
serves again as soon as Redis resumes. The bodies that parse badly enough to have crashed it once are
refused over real HTTP here too, on the server's own threads.
"""

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import redis
import requests

from tests.processes import redis_server
from tests.test_procfile import Web, web_process
from tests.test_slow_clients import timed
from tests.test_webhook import nested
from throwaway import RedisServer

pytestmark = pytest.mark.slow
BOUND_SECONDS = 1.0  # the bound; the web client's 0.5 s timeout keeps each answer well under it
CONCURRENT = 32
STAGGER_SECONDS = 0.02  # concurrent POSTs arrive over 0.64 s, some of them while a round trip is stalled


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def web(private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    with web_process(private_redis.url, tmp_path_factory.mktemp("web") / "web.log") as process:
        yield process


@pytest.fixture
def store(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


@contextmanager
def stalled(server: RedisServer) -> Iterator[None]:
    """Redis frozen as a hung host leaves it: it takes connections (the kernel does), answers nothing."""
    assert server.child is not None
    server.child.signal_group(signal.SIGSTOP)
    try:
        yield
    finally:
        server.child.signal_group(signal.SIGCONT)


def body(label: str) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "test": label}).encode()


def readyz(web: Web) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{web.port}/readyz", timeout=10)


def test_while_redis_is_stalled_a_post_and_readyz_are_answered_503_within_a_second(
    web: Web, private_redis: RedisServer
) -> None:
    assert web.post(body("before")).status_code == 200  # the web process holds open connections to Redis
    with stalled(private_redis):
        post, post_seconds = timed(lambda: web.post(body("during"), timeout=10))
        ready, ready_seconds = timed(lambda: readyz(web))
    print(f"stalled Redis: POST answered in {post_seconds:.3f} s, /readyz in {ready_seconds:.3f} s")
    assert (post.status_code, post.json()) == (503, {"error": "temporarily unavailable"})
    assert post_seconds < BOUND_SECONDS
    assert ready.status_code == 503
    assert ready_seconds < BOUND_SECONDS


def staggered_post(web: Web, n: int) -> tuple[requests.Response, float]:
    time.sleep(n * STAGGER_SECONDS)
    return timed(lambda: web.post(body(f"concurrent-{n}"), timeout=10))


def test_while_redis_is_stalled_concurrent_posts_are_each_answered_503_within_a_second(
    web: Web, private_redis: RedisServer
) -> None:
    with stalled(private_redis), ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(lambda n: staggered_post(web, n), range(CONCURRENT)))
    seconds = sorted(seconds for _, seconds in answers)
    print(f"stalled Redis: {CONCURRENT} POSTs answered in {seconds[0]:.3f}-{seconds[-1]:.3f} s")
    assert {response.status_code for response, _ in answers} == {503}
    assert seconds[-1] < BOUND_SECONDS


def test_once_redis_resumes_a_post_is_queued_and_readyz_is_ok(
    web: Web, private_redis: RedisServer, store: redis.Redis
) -> None:
    with stalled(private_redis):
        assert web.post(body("stalled")).status_code == 503
    after = body("resumed")
    assert web.post(after).status_code == 200
    assert after in web.inbox(store)
    assert readyz(web).status_code == 200


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(nested(100_000), id="100,000 levels deep"),
        pytest.param(b'{"n":' + b"7" * 5_000 + b"}", id="5,000-digit integer"),
    ],
)
def test_the_web_process_refuses_a_hostile_body_with_a_json_400(
    web: Web, store: redis.Redis, hostile: bytes
) -> None:
    response = web.post(hostile)
    assert (response.status_code, response.headers["Content-Type"]) == (400, "application/json")
    assert set(response.json()) == {"error"}
    assert hostile not in web.inbox(store)
    assert "Traceback" not in web.log.read_text()
