"""Secrets never leave the process that holds them, and personal data stays out of the logs at INFO.

The whole path runs once as deployed, at LOG_LEVEL=DEBUG with the access log on: the Procfile's web and
worker lines and `wahooks console`, every secret of the configuration set to a distinctive value in their
environments (two app secrets, being rotated; the verify token; WHATSAPP_ACCESS_TOKEN; METRICS_TOKEN;
CONSOLE_TOKEN; the passwords in DATABASE_URL and REDIS_URL), the handshake, signed and refused POSTs, a
body PostgreSQL refuses (with an error that quotes the refused row) until it ends in RQ's failed registry,
the console's pages without the token, with it and through its login form, and Redis going away under the
web and the worker.
Everything the run leaves is then searched: every log line of both processes, every value in Redis (RQ's
job data, results and registries, unwrapped from zlib and base64), the errors and notes in
webhook_events, and the HTTP answers.
"""

import base64
import binascii
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, quote_plus

import pytest
import redis
import requests
from rq import Queue
from rq.job import Job
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from models import WebhookEvent
from models.db import Database
from runtime import logs
from tests.conftest import TENANT_A, empty_tables, seed
from tests.processes import free_port, redis_server, wait_until
from tests.test_procfile import Web, launch, web_process
from throwaway import RedisServer, start
from webhook.signature import sign

APP_SECRET = "c0ffee5e1f2a4b6d8e0f1a3c5e7b9d0f"
ROTATED_APP_SECRET = "0ld5ecret9a8b7c6d5e4f3a2b1c0d9e8"
# The characters a line may escape (JSON) or encode (a URL's query string or userinfo) are all here.
VERIFY_TOKEN = 'verify "Quokka" /tok+en&=?é'
ACCESS_TOKEN = "EAAGm0PX4ZCpsBAQuokkaAccessTokenZq7x"
METRICS_TOKEN = "metrics-Quokka-scrape-7c1d"
CONSOLE_TOKEN = "console-Quokka-operator-3b9e"
DATABASE_PASSWORD = "db-pw:Quokka@7/x"
REDIS_PASSWORD = "redis-pw Quokka+7"
SECRETS = {
    "app secret": APP_SECRET,
    "rotated app secret": ROTATED_APP_SECRET,
    "verify token": VERIFY_TOKEN,
    "access token": ACCESS_TOKEN,
    "metrics token": METRICS_TOKEN,
    "console token": CONSOLE_TOKEN,
    "database password": DATABASE_PASSWORD,
    "redis password": REDIS_PASSWORD,
}

CUSTOMER, CUSTOMER_NAME, CUSTOMER_TEXT = "4917612345678", "Zelda Quartermaine", "Meet me at Quokka Lane 7"
RECIPIENT = "447700900123"
POISON_CUSTOMER, POISON_NAME, POISON_TEXT = "33612345678", "Ignatius Wobble", "refused: a Xylophone at dawn"
LATE_CUSTOMER, LATE_TEXT = "12025550199", "sent while Redis was away, a Narwhal"
PERSONAL_DATA = {
    "customer's number": CUSTOMER,
    "customer's name": CUSTOMER_NAME,
    "customer's text": CUSTOMER_TEXT,
    "status recipient's number": RECIPIENT,
    "refused body's number": POISON_CUSTOMER,
    "refused body's name": POISON_NAME,
    "refused body's text": POISON_TEXT,
    "number posted while Redis was down": LATE_CUSTOMER,
    "text posted while Redis was down": LATE_TEXT,
}
POISON_WAMID = "wamid.SECRETS-REFUSED"
TIMESTAMP = "1793610904"


def spellings(secret: str) -> set[str]:
    """The secret as written, as a JSON string holds it (non-ASCII kept or escaped), and as a URL or a
    form encodes it."""
    in_json = {json.dumps(secret, ensure_ascii=ascii)[1:-1] for ascii in (False, True)}
    return {secret, *in_json, quote(secret, safe=""), quote_plus(secret, safe="")}


# Bodies


def envelope(value: dict[str, object]) -> bytes:
    metadata = {
        "display_phone_number": TENANT_A.display_phone_number,
        "phone_number_id": TENANT_A.phone_number_id,
    }
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata, **value}}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": TENANT_A.waba_id, "changes": [change]}]}
    ).encode()


def text_message(wamid: str, phone: str, name: str, body: str) -> bytes:
    return envelope(
        {
            "contacts": [{"profile": {"name": name}, "wa_id": phone}],
            "messages": [
                {"from": phone, "id": wamid, "timestamp": TIMESTAMP, "type": "text", "text": {"body": body}}
            ],
        }
    )


MESSAGE = text_message("wamid.SECRETS-TEXT", CUSTOMER, CUSTOMER_NAME, CUSTOMER_TEXT)
STATUS = envelope(
    {
        "statuses": [
            {
                "id": "wamid.SECRETS-OUT",
                "status": "delivered",
                "timestamp": TIMESTAMP,
                "recipient_id": RECIPIENT,
            }
        ]
    }
)
POISON = text_message(POISON_WAMID, POISON_CUSTOMER, POISON_NAME, POISON_TEXT)
LATE = text_message("wamid.SECRETS-LATE", LATE_CUSTOMER, CUSTOMER_NAME, LATE_TEXT)


# What the run leaves


@dataclass
class Run:
    answers: dict[str, requests.Response]
    logs: dict[str, str]  # process name -> everything it wrote
    redis: bytes  # every key and value, as stored and unwrapped
    event_texts: list[str]  # webhook_events.error and .notes
    failed_jobs: list[str]

    def places(self) -> dict[str, str]:
        """Everything a secret must never reach, by where it is."""
        return {
            **{f"{name} log": text for name, text in self.logs.items()},
            "Redis": self.redis.decode(errors="replace"),
            "webhook_events": "\n".join(self.event_texts),
            "HTTP answers": "\n".join(r.text for r in self.answers.values()),
        }

    def shown_at_info(self, process: str) -> list[str]:
        """The lines a process writes at LOG_LEVEL=INFO: all but its debug lines (and any line not JSON)."""
        return [line for line in self.logs[process].splitlines() if _level(line) != "debug"]


def _level(line: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record.get("level") if isinstance(record, dict) else None


def unwrapped(value: bytes) -> bytes:
    """A Redis value followed by what RQ wraps in it: zlib (job data, exc_info), base64 of zlib (results)."""
    found = [value]
    for candidate in (value, _base64(value)):
        with contextlib.suppress(zlib.error):
            found.append(zlib.decompress(candidate))
    return b"\n".join(found)


def _base64(value: bytes) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return b""


# How to read every value under a key, by the key's Redis type.
READERS: dict[bytes, Callable[[redis.Redis, bytes], Any]] = {
    b"string": lambda store, key: [store.get(key)],
    b"list": lambda store, key: store.lrange(key, 0, -1),
    b"hash": lambda store, key: [item for pair in store.hgetall(key).items() for item in pair],
    b"set": lambda store, key: store.smembers(key),
    b"zset": lambda store, key: store.zrange(key, 0, -1),
    b"stream": lambda store, key: [
        item for _, fields in cast(Any, store.xrange(key)) for pair in fields.items() for item in pair
    ],
}


def everything_in(store: redis.Redis) -> bytes:
    """Every key of the Redis database and every value under it."""
    parts: list[bytes] = []
    for key in store.scan_iter():
        kind = store.type(key)
        assert kind in READERS, f"{key!r} is a Redis {kind!r}, which this search does not read"
        parts += [key, *(unwrapped(value) for value in READERS[kind](store, key))]
    return b"\n".join(parts)


# The run


@pytest.fixture(scope="module")
def database(postgres_db: Database, postgres_url: str) -> Iterator[str]:
    """The test database with tenant A, refusing one wamid as PostgreSQL refuses a row it cannot take:
    its error quotes the whole row. Yields a URL with a password (trust authentication ignores it)."""
    empty_tables(postgres_db)
    seed(postgres_db)
    with postgres_db.session() as session:
        session.execute(
            text(
                "ALTER TABLE whatsapp_messages ADD CONSTRAINT refuse_poison"
                f" CHECK (wamid <> '{POISON_WAMID}') NOT VALID"
            )
        )
    try:
        yield make_url(postgres_url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)
    finally:
        with postgres_db.session() as session:
            session.execute(text("ALTER TABLE whatsapp_messages DROP CONSTRAINT refuse_poison"))
        empty_tables(postgres_db)


def environment(database_url: str, redis_url: str) -> dict[str, str]:
    """What a platform gives every process: the whole configuration, at DEBUG, with the access log."""
    return {
        "WHATSAPP_APP_SECRET": f"{APP_SECRET},{ROTATED_APP_SECRET}",
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "METRICS_TOKEN": METRICS_TOKEN,
        "CONSOLE_TOKEN": CONSOLE_TOKEN,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        "GRANIAN_LOG_ACCESS_ENABLED": "1",
    }


def post(web: Web, body: bytes, secret: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return requests.post(web.url, data=body, headers=headers, timeout=5)


def handshake(web: Web, token: str) -> requests.Response:
    params = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    return requests.get(web.url, params=params, timeout=5)


def exhaust_retries(queue: Queue) -> None:
    """Once the refused body waits for its first retry, make it the last, as the schedule would in time."""
    wait_until(lambda: bool(queue.scheduled_job_registry.get_job_ids()), 15, "the refused body's retry")
    for job_id in queue.scheduled_job_registry.get_job_ids():
        job = Job.fetch(job_id, connection=queue.connection)
        job.retries_left = 0
        job.save()


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def processed(db: Database) -> int:
    with db.session() as session:
        outcomes = session.scalars(select(WebhookEvent.outcome)).all()
    return outcomes.count("processed")


def require_password(server: RedisServer) -> str:
    """Make the private Redis ask for REDIS_PASSWORD; its URL with the password."""
    with redis.Redis.from_url(server.url) as admin:
        admin.config_set("requirepass", REDIS_PASSWORD)
    return f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{server.port}/0"


def deliver(web: Web) -> dict[str, requests.Response]:
    """The handshake and every kind of POST, while Redis is up; the answers by what was sent."""
    return {
        "handshake": handshake(web, VERIFY_TOKEN),
        "handshake, wrong token": handshake(web, "not the token"),
        "signed": post(web, MESSAGE, APP_SECRET),
        "signed with the rotated secret": post(web, STATUS, ROTATED_APP_SECRET),
        "refused by the database": post(web, POISON, APP_SECRET),
        "bad signature": post(web, LATE, "not the secret"),
        "unsigned": post(web, LATE, None),
    }


def deliver_without_redis(web: Web) -> dict[str, requests.Response]:
    return {
        "Redis down": post(web, LATE, APP_SECRET),
        "ready, Redis down": requests.get(web.url.replace("/webhook", "/readyz"), timeout=5),
    }


def visit_console(url: str) -> dict[str, requests.Response]:
    """The console without its token, with a wrong one, with it as a bearer and through the login form."""
    bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    return {
        "console, no token": requests.get(url, timeout=5),
        "console, wrong token": requests.post(f"{url}/login", data={"token": "not the token"}, timeout=5),
        "console, bearer": requests.get(url, headers=bearer, timeout=10),
        "console, queue dashboard": requests.get(f"{url}/rq/0/data/queues.json", headers=bearer, timeout=5),
        "console, login": requests.post(
            f"{url}/login", data={"token": CONSOLE_TOKEN}, allow_redirects=False, timeout=5
        ),
    }


def console_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 401
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def run(postgres_db: Database, database: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    logs_folder = tmp_path_factory.mktemp("secrets")
    worker_log = logs_folder / "worker.log"
    with redis_server() as server:
        redis_url = require_password(server)
        store = redis.Redis.from_url(redis_url)
        env = environment(database, redis_url)
        with web_process(redis_url, logs_folder / "web.log", **env) as web:
            worker = launch("worker", {**env, "WAHOOKS_QUEUE": web.queue}, worker_log)
            console_url = f"http://127.0.0.1:{free_port()}"
            console = start(
                "console",
                [sys.executable, "-m", "cli.main", "console", "--port", console_url.rpartition(":")[2]],
                {**os.environ, **env, "WAHOOKS_QUEUE": web.queue},
                logs_folder / "console.log",
            )
            try:
                answers = deliver(web)
                queue = Queue(web.queue, connection=store)
                exhaust_retries(queue)
                wait_until(lambda: bool(queue.failed_job_registry.get_job_ids()), 15, "the failed registry")
                wait_until(lambda: processed(postgres_db) == 2, 15, "both good bodies stored")
                wait_until(lambda: console_answers(console_url), 30, "the console answering")
                answers |= visit_console(console_url)
                console.stop()
                failed_jobs, contents = queue.failed_job_registry.get_job_ids(), everything_in(store)
                server.kill()
                answers |= deliver_without_redis(web)
                wait_until(lambda: "redis unavailable" in worker_log.read_text(), 15, "the worker noticing")
            finally:
                console.stop()
                kill(worker)  # with Redis gone, it would wait for Redis rather than stop
        store.close()
    with postgres_db.session() as session:
        rows = session.execute(select(WebhookEvent.error, WebhookEvent.notes)).all()
    return Run(
        answers=answers,
        logs={name: (logs_folder / f"{name}.log").read_text() for name in ("web", "worker", "console")},
        redis=contents,
        event_texts=[str(value) for row in rows for value in row if value is not None],
        failed_jobs=failed_jobs,
    )


# What the run shows


@pytest.mark.slow
def test_the_run_took_every_path_it_searches(run: Run) -> None:
    """Without this, a search of an empty log or an unreadable Redis would pass."""
    assert {name: r.status_code for name, r in run.answers.items()} == {
        "handshake": 200,
        "handshake, wrong token": 403,
        "signed": 200,
        "signed with the rotated secret": 200,
        "refused by the database": 200,
        "bad signature": 403,
        "unsigned": 401,
        "Redis down": 503,
        "ready, Redis down": 503,
        "console, no token": 401,
        "console, wrong token": 401,
        "console, bearer": 200,
        "console, queue dashboard": 200,
        "console, login": 303,
    }
    assert len(run.failed_jobs) == 1
    # The database's error quotes the refused row: exactly what a log line must not repeat.
    assert any(POISON_TEXT in error for error in run.event_texts)
    # Job data and results are read: the refused body is in the failed job, its error in the results.
    assert POISON_TEXT.encode() in run.redis and b"BodyFailed" in run.redis
    for process in ("web", "worker"):
        assert any(_level(line) == "debug" for line in run.logs[process].splitlines()), process
    assert "GET /webhook" in run.logs["web"]  # the access log is on
    assert "POST /login" in run.logs["console"]
    assert "refuse_poison" in run.answers["console, bearer"].text  # the page shows the failed body's error


@pytest.mark.slow
@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_is_nowhere_the_run_left_anything(run: Run, name: str) -> None:
    leaks = [
        f"{place} holds the {name} as {spelling!r}"
        for place, content in run.places().items()
        for spelling in spellings(SECRETS[name])
        if spelling in content
    ]
    assert not leaks


@pytest.mark.slow
@pytest.mark.parametrize("name", PERSONAL_DATA)
@pytest.mark.parametrize("process", ["web", "worker", "console"])
def test_personal_data_stays_out_of_the_log_at_info(run: Run, process: str, name: str) -> None:
    value = PERSONAL_DATA[name]
    assert [line for line in run.shown_at_info(process) if value in line] == []


# The formatters, in process


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """An empty set of hidden values for this test, whatever other tests registered."""
    secrets: set[str] = set()
    monkeypatch.setattr(logs, "_secrets", secrets)
    return secrets


@pytest.mark.parametrize("formatter", [logs.JsonFormatter, logs.TextFormatter])
@pytest.mark.parametrize("name", SECRETS)
def test_the_formatters_mask_the_environments_secrets_however_spelled(
    registry: set[str], monkeypatch: pytest.MonkeyPatch, formatter: type[logging.Formatter], name: str
) -> None:
    database_url = make_url("postgresql://u@db/wahooks").set(password=DATABASE_PASSWORD)
    for variable, value in environment(
        database_url.render_as_string(hide_password=False),
        f"redis://:{quote(REDIS_PASSWORD, safe='')}@redis:6379/0",
    ).items():
        monkeypatch.setenv(variable, value)
    secret = SECRETS[name]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (" ".join(spellings(secret)),), None)
    record.error = secret
    record.tenant = [secret]  # not a string: masked in the finished line
    line = formatter().format(record)
    assert [s for s in spellings(secret) if s in line] == []
