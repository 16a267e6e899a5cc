"""Slow clients against the Procfile's web process: requests that stall or trickle hold no one else up.

Anyone on the internet can open connections to the endpoint without the app secret. Meta's deliveries
must still be answered at once while such connections hang partway through a request.
"""

import resource
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis

from tests.test_procfile import TEXT, Web, procfile, real_redis, stop, web
from tests.test_webhook import json_of_size

__all__ = ["real_redis", "web"]  # fixtures: the Procfile's web process, and the Redis it uses (emptied)

pytestmark = pytest.mark.slow
STALLED = 50
BOUND_SECONDS = 1.0  # a request's answer while others stall: the behaviour under test, with a wide margin
HEAD = b"POST /webhook HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
# Where a stalled request stops: before its first byte, inside the request line or a header, or
# inside a body whose Content-Length promises more than was sent.
CUTS = (
    b"",
    b"GET /webhook?hub.mode=subscr",
    b"POST /webhook HTTP/1.1\r\nHost: te",
    HEAD + b"X-Hub-Signature-256: sha256=0123",
    HEAD,
    HEAD + b"Content-Length: 4096\r\n\r\n",
    HEAD + b'Content-Length: 4096\r\n\r\n{"object":"whatsapp_business_account","entry":[',
)


def procfile_option(name: str) -> int:
    """An option's value on the Procfile's web: line (granian's --name VALUE)."""
    words = shlex.split(procfile("web"))
    return int(words[words.index(name) + 1])


@pytest.fixture
def stalled(web: Web) -> Iterator[list[socket.socket]]:
    """STALLED connections, each stopped partway through a request, closed at the end of the test."""
    connections = []
    try:
        for n in range(STALLED):
            connection = web.connect()
            connection.sendall(CUTS[n % len(CUTS)])
            connections.append(connection)
        yield connections
    finally:
        for connection in connections:
            connection.close()


T = TypeVar("T")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """call()'s result and the seconds it took."""
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


def test_stalled_requests_hold_up_neither_a_signed_post_nor_the_handshake(
    web: Web, real_redis: redis.Redis, stalled: list[socket.socket]
) -> None:
    time.sleep(0.3)  # the server has taken in every stalled connection and waits on each
    answer, post_seconds = timed(lambda: web.post(TEXT))
    challenge, get_seconds = timed(lambda: web.handshake("1158201444"))

    assert answer.status_code == 200
    assert post_seconds < BOUND_SECONDS
    assert (challenge.status_code, challenge.text) == (200, "1158201444")
    assert get_seconds < BOUND_SECONDS
    assert web.inbox(real_redis) == [TEXT]

    for connection in stalled:
        connection.close()
    later = json_of_size(512)
    assert web.post(later).status_code == 200
    assert sorted(web.inbox(real_redis)) == sorted([TEXT, later])


def test_more_silent_connections_than_granians_default_allows_hold_up_no_one(web: Web) -> None:
    """A connection that sends nothing is never timed out; --backpressure sets how many a worker keeps
    taking (granian's default, 1024 in all for 2 workers, would stop accepting here)."""
    count = 1200
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < count + 100:
        pytest.skip(f"needs {count + 100} open files (ulimit -n)")
    connections = [web.connect() for _ in range(count)]
    try:
        answer, seconds = timed(lambda: web.post(TEXT))
        assert answer.status_code == 200
        assert seconds < BOUND_SECONDS
    finally:
        for connection in connections:
            connection.close()


def test_a_client_trickling_its_headers_is_cut_off_at_the_header_timeout(web: Web) -> None:
    timeout = procfile_option("--http1-header-read-timeout") / 1000
    with web.connect() as connection:
        connection.settimeout(0.25)
        began = time.monotonic()
        closed = False
        for byte in HEAD * 100:  # one byte every 0.25 s: far longer than the timeout
            try:
                connection.sendall(bytes([byte]))
                closed = connection.recv(1024) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        cut_after = time.monotonic() - began
    assert closed
    assert cut_after < timeout + 2
    assert web.post(TEXT).status_code == 200


def trickle(web: Web, stopped: threading.Event) -> None:
    """A body announced as 16000 bytes, sent one byte every 0.1 s until stopped or disconnected."""
    with web.connect() as connection:
        connection.sendall(HEAD + b"Content-Length: 16000\r\n\r\n")
        while not stopped.wait(0.1):
            try:
                connection.sendall(b" ")
            except OSError:
                return


def test_a_client_trickling_a_body_holds_up_no_one_and_not_the_shutdown(web: Web) -> None:
    """granian has no timeout for a request body: a trickle holds one of a worker's threads while it
    lasts, others are served meanwhile, and SIGTERM ends it within the kill timeout."""
    kill_timeout = procfile_option("--workers-kill-timeout")
    stopped = threading.Event()
    trickler = threading.Thread(target=trickle, args=(web, stopped))
    trickler.start()
    try:
        time.sleep(0.5)
        answer, seconds = timed(lambda: web.post(TEXT))
        assert answer.status_code == 200
        assert seconds < BOUND_SECONDS
        began = time.monotonic()
        stop(web.process)
        assert time.monotonic() - began < kill_timeout + 3
    finally:
        stopped.set()
        trickler.join()
