"""The Procfile, run as a platform runs it: the real web server and a real worker, HTTP to PostgreSQL.

The web process's own behaviour is pinned down here too: its log lines, its body limits over real
HTTP, a configuration error, SIGTERM while a request is in flight, and a worker process that dies.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from runtime.inbox import InboxKeys
from tests import tables
from tests.conftest import PAYLOADS, SECRET, VERIFY_TOKEN, Backend, load_expected, seed
from tests.processes import PROJECT_ROOT, free_port, wait_until
from tests.test_webhook import json_of_size, real_redis, signed

pytestmark = pytest.mark.slow
__all__ = ["real_redis"]  # the fixture: the real Redis of the run, emptied before and after
LIMIT = 16 * 1024
TEXT = (PAYLOADS / "text_reply.json").read_bytes()


def procfile(kind: str) -> str:
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {kind}: line in the Procfile")


def launch(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`bash -c "exec <line>"`, as a platform runs a Procfile line, in a process group of its own."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with log.open("wb") as out:
        return subprocess.Popen(
            ["bash", "-c", f"exec {procfile(kind)}"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PATH": path, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


@dataclass
class Web:
    """The Procfile's web: process on a free port of 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    queue: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    def post(self, body: bytes, timeout: float = 5) -> requests.Response:
        return requests.post(self.url, data=body, headers=signed(body), timeout=timeout)

    def handshake(self, challenge: str, timeout: float = 5) -> requests.Response:
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": challenge}
        return requests.get(self.url, params=params, timeout=timeout)

    def inbox(self, store: redis.Redis) -> list[bytes]:
        return store.lrange(InboxKeys(self.queue).inbox, 0, -1)

    def workers(self) -> set[int]:
        """The pids of the server's worker processes (the children of the process the line started)."""
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return {int(pid) for pid in found.stdout.split()}

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@contextmanager
def web_process(redis_url: str, log: Path, **env: str) -> Iterator[Web]:
    """The web: line serving the webhook with Redis at redis_url, answering before it is yielded."""
    port, queue = free_port(), f"procfile-{uuid.uuid4().hex[:6]}"
    settings = {
        "PORT": str(port),
        "REDIS_URL": redis_url,
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WAHOOKS_QUEUE": queue,
        "LOG_FORMAT": "json",
        **env,
    }
    process = launch("web", settings, log)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, "the web process answering")
        yield Web(port, process, log, queue)
    finally:
        stop(process)


@pytest.fixture
def web(redis_url: str, real_redis: redis.Redis, tmp_path: Path) -> Iterator[Web]:
    with web_process(redis_url, tmp_path / "web.log", WEBHOOK_MAX_BODY_BYTES=str(LIMIT)) as process:
        yield process


def json_lines(log: Path) -> list[dict[str, object]]:
    lines = log.read_text().splitlines()
    assert lines, f"{log.name} is empty"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(line, dict) for line in parsed), f"{log.name} has a line that is not a JSON object"
    return parsed


# The whole pipeline


@pytest.fixture
def deployment(postgres_backend: Backend, tmp_path: Path) -> Iterator[tuple[Web, Path]]:
    seed(postgres_backend.db)
    database_url = postgres_backend.db.engine.url.render_as_string(hide_password=False)
    with web_process(postgres_backend.redis_url, tmp_path / "web.log") as web:
        worker_env = {
            "REDIS_URL": postgres_backend.redis_url,
            "DATABASE_URL": database_url,
            "WAHOOKS_QUEUE": web.queue,
            "LOG_FORMAT": "json",
        }
        worker = launch("worker", worker_env, tmp_path / "worker.log")
        try:
            yield web, tmp_path
        finally:
            stop(worker)


def test_web_and_worker_lines_take_a_signed_post_to_the_tables(
    deployment: tuple[Web, Path], postgres_backend: Backend
) -> None:
    web, logs = deployment
    challenge = web.handshake("4242")
    assert (challenge.status_code, challenge.text) == (200, "4242")
    body = (PAYLOADS / "batched_mixed.json").read_bytes()
    assert web.post(body).status_code == 200
    assert requests.get(f"http://127.0.0.1:{web.port}/readyz", timeout=5).status_code == 200
    wait_until(lambda: bool(tables.outcomes(postgres_backend.db)), 30, "the worker storing the body")
    tables.assert_state(postgres_backend.db, load_expected("batched_mixed.json"))
    for log in ("web.log", "worker.log"):
        json_lines(logs / log)
        assert SECRET not in (logs / log).read_text()


# The web process


def test_the_servers_own_lines_and_access_log_are_json_from_start_to_shutdown(
    redis_url: str, real_redis: redis.Redis, tmp_path: Path
) -> None:
    with web_process(redis_url, tmp_path / "web.log", GRANIAN_LOG_ACCESS_ENABLED="1") as web:
        assert web.handshake("77").status_code == 200
    messages = [str(line["msg"]).lower() for line in json_lines(web.log)]
    assert any("listening at" in message for message in messages)
    assert any("get /webhook" in message for message in messages)
    assert any("shut" in message for message in messages)


def test_a_declared_length_over_the_limit_is_refused_without_waiting_for_the_body(
    web: Web, real_redis: redis.Redis
) -> None:
    with web.connect() as connection:
        connection.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
        )
        assert connection.recv(64).startswith(b"HTTP/1.1 413")
    assert web.inbox(real_redis) == []


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 200), (LIMIT + 1, 413)])
def test_a_chunked_body_is_measured_while_it_streams(
    web: Web, real_redis: redis.Redis, size: int, status: int
) -> None:
    body = json_of_size(size)
    chunks = (body[n : n + 1000] for n in range(0, len(body), 1000))
    response = requests.post(web.url, data=chunks, headers=signed(body), timeout=10)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == status
    assert web.inbox(real_redis) == ([body] if status == 200 else [])


def test_a_configuration_error_stops_start_up_with_the_message(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    env = {"PORT": str(free_port()), "REDIS_URL": redis_url, "WHATSAPP_APP_SECRET": SECRET}
    process = launch("web", {**env, "WHATSAPP_VERIFY_TOKEN": ""}, log)
    try:
        assert process.wait(timeout=30) == 2
    finally:
        stop(process)
    assert "configuration error: WHATSAPP_VERIFY_TOKEN is not set" in log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("send", [os.kill, os.killpg], ids=["to the main process", "to its process group"])
def test_sigterm_lets_a_request_in_flight_finish_then_exits(
    web: Web, real_redis: redis.Redis, send: Callable[[int, int], None]
) -> None:
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: test\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in signed(TEXT).items()).encode()
    )
    with web.connect() as connection:
        connection.sendall(head + f"Content-Length: {len(TEXT)}\r\n\r\n".encode() + TEXT[:100])
        time.sleep(0.3)  # the server has the request and waits for the rest of the body
        send(web.process.pid, signal.SIGTERM)
        time.sleep(0.3)
        connection.sendall(TEXT[100:])
        assert connection.recv(64).startswith(b"HTTP/1.1 200")
    assert web.process.wait(timeout=15) == 0
    assert web.inbox(real_redis) == [TEXT]


def test_a_worker_process_that_dies_is_replaced(web: Web) -> None:
    before = web.workers()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(web.workers() - {victim}) == len(before), 20, "a new worker process")
    assert web.process.poll() is None
    assert all(web.post(json.dumps({"n": n}).encode()).status_code == 200 for n in range(10))
