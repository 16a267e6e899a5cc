"""The Flask intake: Meta's handshake, signed POSTs into the Redis inbox, and every way a POST is refused."""

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fakeredis
import pytest
import redis
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

from runtime.config import WebConfig
from runtime.inbox import Inbox, InboxKeys, body_digest
from runtime.logs import JsonFormatter
from runtime.redis_client import web_client
from tests.conftest import PAYLOADS, SECRET, VERIFY_TOKEN, empty_redis
from tests.processes import PROJECT_ROOT, free_port, wait_until
from webhook import intake
from webhook.app import create_app
from webhook.intake import MAX_NESTING
from webhook.signature import sign

LIMIT = 256 * 1024  # room for the hostile bodies (100,000 levels deep is 200 KB)
QUEUE = "webhook-test"
TEXT = (PAYLOADS / "text_reply.json").read_bytes()


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    body = b'{"pad":"' + b"x" * (size - 10) + b'"}'
    assert len(body) == size
    return body


def nested(levels: int, shallow_siblings: int = 0) -> bytes:
    """A JSON object nesting `levels` deep (`{}` is one level), beside that many arrays one level down."""
    siblings = b'"pad":[' + b",".join([b"[]"] * shallow_siblings) + b"]," if shallow_siblings else b""
    return b"{" + siblings + b'"entry":' + b"[" * (levels - 1) + b"null" + b"]" * (levels - 1) + b"}"


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}


@pytest.fixture
def push_connections() -> int:
    return 1


@pytest.fixture
def config(push_connections: int) -> WebConfig:
    return WebConfig(
        redis_url="redis://unused",
        app_secrets=(SECRET,),
        verify_token=VERIFY_TOKEN,
        queue=QUEUE,
        max_body_bytes=LIMIT,
        push_connections=push_connections,
    )


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    empty_redis(client)
    yield client
    empty_redis(client)
    client.close()


@pytest.fixture(params=["fakeredis", "redis"])
def store(request: pytest.FixtureRequest) -> redis.Redis:
    """Each test that takes it runs on the in-process fake and on the real Redis."""
    if request.param == "redis":
        return request.getfixturevalue("real_redis")
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def app(config: WebConfig, store: redis.Redis) -> Flask:
    return create_app(config, redis=store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def inbox(store: redis.Redis) -> Inbox:
    return Inbox(store, QUEUE)


def queued(store: redis.Redis) -> list[bytes]:
    return store.lrange(InboxKeys(QUEUE).inbox, 0, -1)


def queue_keys(store: redis.Redis) -> list[bytes]:
    return store.keys(f"wahooks:{QUEUE}:*")


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    return free_port()


@pytest.fixture
def redis_down(config: WebConfig, closed_port: int) -> FlaskClient:
    """The app with the production web client pointing at a Redis that is not there."""
    return create_app(config, redis=web_client(f"redis://127.0.0.1:{closed_port}/0")).test_client()


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's real HTTP server (it decodes chunked bodies, as granian does)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/webhook"
    server.shutdown()
    thread.join()


# The GET handshake


def handshake(client: FlaskClient, **params: str) -> tuple[int, str, str]:
    response = client.get("/webhook", query_string={f"hub.{k}": v for k, v in params.items()})
    return response.status_code, response.mimetype, response.get_data(as_text=True)


@pytest.mark.parametrize("challenge", ["1158201444", "a challenge with spaces & <b>markup</b>"])
def test_handshake_with_the_verify_token_answers_the_challenge_as_plain_text(
    client: FlaskClient, challenge: str
) -> None:
    status, mimetype, text = handshake(
        client, mode="subscribe", verify_token=VERIFY_TOKEN, challenge=challenge
    )
    assert (status, mimetype, text) == (200, "text/plain", challenge)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"mode": "subscribe", "verify_token": "wrong", "challenge": "42"}, id="wrong token"),
        pytest.param({"mode": "subscribe", "verify_token": "", "challenge": "42"}, id="empty token"),
        pytest.param({"mode": "subscribe", "challenge": "42"}, id="no token"),
        pytest.param({"mode": "subscribe", "verify_token": VERIFY_TOKEN}, id="no challenge"),
        pytest.param({"verify_token": VERIFY_TOKEN, "challenge": "42"}, id="no mode"),
        pytest.param(
            {"mode": "unsubscribe", "verify_token": VERIFY_TOKEN, "challenge": "42"}, id="wrong mode"
        ),
        pytest.param(
            {"mode": "SUBSCRIBE", "verify_token": VERIFY_TOKEN, "challenge": "42"}, id="uppercase mode"
        ),
        pytest.param(
            {"mode": "subscribe", "verify_token": VERIFY_TOKEN.upper(), "challenge": "42"},
            id="token in another case",
        ),
        pytest.param({}, id="no parameters"),
    ],
)
def test_handshake_without_the_right_mode_token_and_challenge_is_forbidden(
    client: FlaskClient, params: dict[str, str]
) -> None:
    status, _, text = handshake(client, **params)
    assert status == 403
    assert "42" not in text


# Refused POSTs: the status says why, and nothing reaches the inbox


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(TEXT, {}, 401, id="no signature"),
        pytest.param(TEXT, {"X-Hub-Signature-256": ""}, 401, id="empty signature"),
        pytest.param(TEXT, {"X-Hub-Signature-256": "sha256=abc"}, 403, id="truncated hex"),
        pytest.param(TEXT, {"X-Hub-Signature-256": sign(SECRET, TEXT)[7:]}, 403, id="no sha256= prefix"),
        pytest.param(TEXT, {"X-Hub-Signature-256": "sha1=" + "0" * 40}, 403, id="sha1"),
        pytest.param(TEXT, signed(TEXT, "another-secret"), 403, id="wrong secret"),
        pytest.param(TEXT, signed(TEXT + b" "), 403, id="signature of other bytes"),
        pytest.param(TEXT, {"X-Hub-Signature": sign(SECRET, TEXT)}, 401, id="signature in the sha1 header"),
        pytest.param(json_of_size(LIMIT + 1), signed(json_of_size(LIMIT + 1)), 413, id="too large"),
    ],
)
def test_a_refused_post_queues_nothing(
    client: FlaskClient, store: redis.Redis, body: bytes, headers: dict[str, str], status: int
) -> None:
    response = client.post("/webhook", data=body, headers=headers)
    assert response.status_code == status
    assert set(response.get_json()) == {"error"}
    assert queue_keys(store) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(nested(5_000), id="5,000 levels deep"),
        pytest.param(nested(100_000), id="100,000 levels deep"),
        pytest.param(nested(MAX_NESTING + 1), id="one level over the nesting limit"),
        pytest.param(nested(MAX_NESTING + 1, shallow_siblings=200), id="over the limit among siblings"),
        pytest.param(b'{"n":' + b"7" * 5_000 + b"}", id="5,000-digit integer"),
        pytest.param(b'{"price": NaN}', id="NaN literal"),
        pytest.param(b'{"price": [-Infinity]}', id="-Infinity literal"),
        pytest.param(b'{"a": "\xff"}', id="not UTF-8"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', id="UTF-8 of a lone surrogate"),
        pytest.param('{"a": 1}'.encode("utf-16"), id="UTF-16"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"[]", id="JSON array"),
        pytest.param(b'""', id="JSON string"),
        pytest.param(b"null", id="JSON null"),
        pytest.param(b"", id="empty body"),
    ],
)
def test_a_signed_body_that_cannot_be_read_safely_is_refused_with_a_json_error(
    client: FlaskClient, store: redis.Redis, body: bytes
) -> None:
    response = client.post("/webhook", data=body, headers=signed(body))
    assert (response.status_code, response.mimetype) == (400, "application/json")
    assert set(response.get_json()) == {"error"}
    assert queue_keys(store) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(nested(MAX_NESTING), id="at the nesting limit"),
        pytest.param(nested(MAX_NESTING, shallow_siblings=200), id="at the limit among shallow siblings"),
        pytest.param(b'{"n":' + b"7" * 4_300 + b"}", id="4,300-digit integer"),
        # JSON that orjson refuses and json reads: the workers set such a value aside, its siblings stay.
        pytest.param(b'{"text": "\\ud800"}', id="an escaped lone surrogate"),
        pytest.param(b'{"timestamp": 1e999}', id="a number past a double's range"),
        pytest.param(b'{"n":' + b"9" * 40 + b"}", id="a 40-digit integer (orjson reads a float)"),
    ],
)
def test_a_signed_body_at_the_limits_is_queued(client: FlaskClient, store: redis.Redis, body: bytes) -> None:
    response = client.post("/webhook", data=body, headers=signed(body))
    assert (response.status_code, response.get_json()) == (200, {"queued": True})
    assert queued(store) == [body]


def test_a_body_of_exactly_the_limit_is_accepted(client: FlaskClient, inbox: Inbox) -> None:
    body = json_of_size(LIMIT)
    assert client.post("/webhook", data=body, headers=signed(body)).status_code == 200
    assert inbox.depth() == 1


def test_a_declared_length_over_the_limit_is_refused_before_reading_the_body(
    client: FlaskClient, store: redis.Redis
) -> None:
    """Only the Content-Length header is too large; the bytes sent are a small, validly signed body."""
    response = client.post(
        "/webhook",
        input_stream=io.BytesIO(TEXT),
        headers=signed(TEXT),
        environ_overrides={"CONTENT_LENGTH": str(LIMIT + 1)},
    )
    assert response.status_code == 413
    assert queue_keys(store) == []


def post_chunked(client: FlaskClient, body: bytes) -> int:
    """A chunked POST as a WSGI server hands it over: no Content-Length, the stream ends with the body."""
    return client.post(
        "/webhook",
        input_stream=io.BytesIO(body),
        headers={**signed(body), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    ).status_code


def test_a_chunked_body_within_the_limit_is_accepted(client: FlaskClient, store: redis.Redis) -> None:
    body = json_of_size(LIMIT)
    assert post_chunked(client, body) == 200
    assert queued(store) == [body]


def test_a_chunked_body_over_the_limit_is_too_large(client: FlaskClient, store: redis.Redis) -> None:
    assert post_chunked(client, json_of_size(LIMIT + 1)) == 413
    assert queue_keys(store) == []


def test_a_body_shorter_than_its_declared_length_is_a_bad_request(app: Flask, store: redis.Redis) -> None:
    """The client left mid-body: nothing is queued, and the answer does not blame the signature."""
    environ = EnvironBuilder(path="/webhook", method="POST", data=TEXT, headers=signed(TEXT)).get_environ()
    environ["CONTENT_LENGTH"] = str(len(TEXT) + 100)
    response = Response.from_app(app, environ)
    assert (response.status_code, response.get_json()) == (400, {"error": "bad request"})
    assert queue_keys(store) == []


def _chunks(body: bytes, size: int = 512) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_body_over_the_limit_is_never_queued_over_real_http(live_url: str, inbox: Inbox) -> None:
    body = json_of_size(LIMIT + 1)
    response = requests.post(live_url, data=_chunks(body), headers=signed(body), timeout=10)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code >= 400
    assert inbox.depth() == 0


def test_a_chunked_body_over_the_limit_is_too_large_over_real_http(live_url: str) -> None:
    body = json_of_size(LIMIT + 1)
    response = requests.post(live_url, data=_chunks(body), headers=signed(body), timeout=10)
    assert response.status_code == 413


# Accepted POSTs


@pytest.mark.parametrize("payload", ["text_reply.json", "text_unicode.json", "text_4096_chars.json"])
def test_the_inbox_holds_exactly_the_raw_body(client: FlaskClient, store: redis.Redis, payload: str) -> None:
    body = (PAYLOADS / payload).read_bytes()
    response = client.post("/webhook", data=body, headers=signed(body))
    assert (response.status_code, response.get_json()) == (200, {"queued": True})
    assert queued(store) == [body]


def test_a_body_still_waiting_is_queued_once(client: FlaskClient, inbox: Inbox) -> None:
    first = client.post("/webhook", data=TEXT, headers=signed(TEXT))
    again = client.post("/webhook", data=TEXT, headers=signed(TEXT))
    assert (first.status_code, first.mimetype, first.data) == (200, "application/json", b'{"queued":true}\n')
    assert (again.status_code, again.mimetype, again.data) == (200, "application/json", b'{"queued":false}\n')
    assert inbox.depth() == 1


def test_a_body_is_queued_again_once_it_is_done(client: FlaskClient, inbox: Inbox) -> None:
    client.post("/webhook", data=TEXT, headers=signed(TEXT))
    inbox.done([body_digest(TEXT)])
    response = client.post("/webhook", data=TEXT, headers=signed(TEXT))
    assert response.get_json() == {"queued": True}
    assert inbox.depth() == 2


def test_different_bodies_are_all_queued(client: FlaskClient, store: redis.Redis) -> None:
    bodies = [
        p.read_bytes() for p in sorted((PAYLOADS / "sequences" / "read_before_delivered").glob("*.json"))
    ]
    for body in bodies:
        assert client.post("/webhook", data=body, headers=signed(body)).get_json() == {"queued": True}
    assert sorted(queued(store)) == sorted(bodies)


def test_one_round_trip_queues_each_body_once_in_order(store: redis.Redis, inbox: Inbox) -> None:
    assert inbox.push_many([b'{"n":1}', b'{"n":2}', b'{"n":1}']) == [True, True, False]
    assert inbox.push_many([b'{"n":2}', b'{"n":3}']) == [False, True]
    assert queued(store) == [b'{"n":3}', b'{"n":2}', b'{"n":1}']  # LPUSH: the newest first


def drop_other_connections(client: redis.Redis) -> None:
    """Close every connection to client's database but its own (other databases are other runs')."""
    db, me = client.connection_pool.connection_kwargs["db"], client.client_id()
    for other in client.client_list():
        if int(other["db"]) == db and int(other["id"]) != me:
            client.client_kill_filter(_id=other["id"])


def test_the_single_caller_push_answers_as_push_many_does(store: redis.Redis, inbox: Inbox) -> None:
    push_many = inbox.single_caller_push()
    assert push_many([b'{"n":1}', b'{"n":2}', b'{"n":1}']) == [True, True, False]
    assert inbox.push_many([b'{"n":2}', b'{"n":3}']) == [False, True]
    assert push_many([b'{"n":3}', b'{"n":4}']) == [False, True]
    assert queued(store) == [b'{"n":4}', b'{"n":3}', b'{"n":2}', b'{"n":1}']


def test_the_single_caller_push_survives_a_forgotten_script_and_a_dropped_connection(
    real_redis: redis.Redis, redis_url: str
) -> None:
    push_many = Inbox(web_client(redis_url), QUEUE).single_caller_push()
    assert push_many([b'{"n":1}']) == [True]
    real_redis.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
    assert push_many([b'{"n":2}']) == [True]
    drop_other_connections(real_redis)  # as when Redis restarts: the push's connection is gone
    assert push_many([b'{"n":3}', b'{"n":1}']) == [True, False]
    assert queued(real_redis) == [b'{"n":3}', b'{"n":2}', b'{"n":1}']


@pytest.mark.parametrize("push_connections", [1, 3])
def test_concurrent_posts_each_get_their_own_answer_over_real_http(live_url: str, store: redis.Redis) -> None:
    bodies = [json.dumps({"object": "whatsapp_business_account", "n": n}).encode() for n in range(200)]
    posts = bodies + bodies[:50]  # 50 bodies twice, while the first copy still waits
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(
            pool.map(lambda b: requests.post(live_url, data=b, headers=signed(b), timeout=10), posts)
        )
    assert {a.status_code for a in answers} == {200}
    assert [a.json()["queued"] for a in answers].count(True) == len(bodies)
    assert sorted(queued(store)) == sorted(bodies)


def test_a_signature_from_a_rotated_in_secret_is_accepted(store: redis.Redis, inbox: Inbox) -> None:
    config = WebConfig(
        redis_url="redis://unused", app_secrets=("old-secret", SECRET), verify_token="t", queue=QUEUE
    )
    client = create_app(config, redis=store).test_client()
    assert client.post("/webhook", data=TEXT, headers=signed(TEXT)).status_code == 200
    assert inbox.depth() == 1


# Every other error answers JSON, never Flask's HTML page


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/no-such-page", 404, "not found"),
        ("POST", "/webhook/", 404, "not found"),
        ("PUT", "/webhook", 405, "method not allowed"),
        ("DELETE", "/webhook", 405, "method not allowed"),
        ("POST", "/healthz", 405, "method not allowed"),
    ],
)
def test_a_request_no_route_takes_gets_a_json_error(
    client: FlaskClient, method: str, path: str, status: int, error: str
) -> None:
    response = client.open(path, method=method)
    assert (response.status_code, response.mimetype) == (status, "application/json")
    assert response.get_json() == {"error": error}


def test_a_method_not_allowed_still_names_the_allowed_ones(client: FlaskClient) -> None:
    allowed = client.put("/webhook").headers["Allow"]
    assert {"GET", "POST"} <= {method.strip() for method in allowed.split(",")}


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """What webhook.intake logs, formatted as in production (the formatter masks registered secrets)."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(intake.__name__)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_a_bug_answers_a_json_500_and_logs_the_traceback_without_secrets(
    client: FlaskClient, store: redis.Redis, app_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError(f"a bug that mentions {SECRET}")

    monkeypatch.setattr(intake, "verify", broken)
    response = client.post("/webhook", data=TEXT, headers=signed(TEXT))
    assert (response.status_code, response.get_json()) == (500, {"error": "internal error"})
    logged = app_log.getvalue()
    assert "unexpected error answering POST /webhook" in logged
    assert "RuntimeError: a bug that mentions ***" in logged
    assert SECRET not in logged
    assert queue_keys(store) == []


# Health, and Redis going away


def test_healthz_is_ok(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_readyz_is_ok_with_redis_up(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"ready": True})


def test_readyz_is_unavailable_with_redis_down(redis_down: FlaskClient) -> None:
    assert redis_down.get("/readyz").status_code == 503


def test_healthz_does_not_depend_on_redis(redis_down: FlaskClient) -> None:
    assert redis_down.get("/healthz").status_code == 200


def test_a_valid_post_with_redis_down_is_unavailable_without_a_traceback(redis_down: FlaskClient) -> None:
    response = redis_down.post("/webhook", data=TEXT, headers=signed(TEXT))
    assert response.status_code == 503
    assert response.get_json() == {"error": "temporarily unavailable"}
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_bad_signature_with_redis_down_is_still_forbidden(redis_down: FlaskClient) -> None:
    assert redis_down.post("/webhook", data=TEXT, headers=signed(TEXT, "wrong")).status_code == 403


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that takes connections (the kernel does) and never answers, as a stalled Redis."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_the_web_client_gives_up_on_a_silent_redis_after_one_timeout(silent_port: int) -> None:
    """No retry on a timeout: a stalled Redis becomes a 503 within the issue's second, not after two."""
    client = web_client(f"redis://127.0.0.1:{silent_port}/0")
    began = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert time.monotonic() - began < 1.0
    client.close()


def test_the_web_client_retries_a_command_whose_connection_broke(
    redis_url: str, real_redis: redis.Redis
) -> None:
    """One retry on a broken connection (Redis restarted, a connection closed mid-command): no 503 for it."""
    client = web_client(redis_url)
    victim, killed = client.client_id(), threading.Event()

    def blocked() -> bool:
        return any(c["id"] == str(victim) and "b" in c["flags"] for c in real_redis.client_list())

    def kill_once_blocked() -> None:
        wait_until(blocked, 5, "the BLPOP blocking", interval=0.002)
        real_redis.client_kill_filter(_id=victim)
        killed.set()

    killer = threading.Thread(target=kill_once_blocked)
    killer.start()
    try:
        # Shorter than the client's 0.5 s timeout, long enough for the kill to land while it blocks.
        assert client.blpop(["wahooks:webhook-test:nothing"], timeout=0.3) is None
    finally:
        killer.join()
        client.close()
    assert killed.is_set()


# The web process


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def clean_env(**variables: str) -> dict[str, str]:
    """The test process's environment without any wahooks setting, plus the given ones."""
    prefixes = ("WHATSAPP_", "REDIS_", "DATABASE_", "WEBHOOK_", "WAHOOKS_", "LOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | variables


WEB_ENV = {
    "WHATSAPP_APP_SECRET": "wsgi-secret",
    "WHATSAPP_VERIFY_TOKEN": "wsgi-token",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}
NO_WORKERS = (
    "import sys; assert not [m for m in sys.modules if m.split('.')[0] == 'workers'], 'workers imported'"
)


@pytest.mark.parametrize("module", ["webhook.app", "webhook.wsgi", "webhook.serve"])
def test_the_web_app_never_imports_the_workers(module: str) -> None:
    result = run_python(f"import {module}; {NO_WORKERS}", clean_env(**WEB_ENV))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(WEB_ENV))
def test_wsgi_exits_naming_a_missing_variable(missing: str) -> None:
    env = clean_env(**{k: v for k, v in WEB_ENV.items() if k != missing})
    result = run_python("import webhook.wsgi", env)
    assert result.returncode != 0
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def test_the_web_process_names_an_option_it_does_not_know_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook.serve", "--no-such-option", "webhook.wsgi:app"],
        cwd=PROJECT_ROOT,
        env=clean_env(**WEB_ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "No such option '--no-such-option'" in result.stderr
    assert "Traceback" not in result.stderr


def test_wsgi_builds_the_app_from_the_environment() -> None:
    code = "import json, webhook.wsgi as w; print(json.dumps([r.rule for r in w.app.url_map.iter_rules()]))"
    result = run_python(code, clean_env(**WEB_ENV))
    assert result.returncode == 0, result.stderr
    assert {"/webhook", "/healthz", "/readyz"} <= set(json.loads(result.stdout))
