"""The console app through Flask's test client, on real PostgreSQL and Redis: every route refuses without
the token, the status page shows what the queue and the tables hold, requeue works, the chart is a PNG.

tests/test_console_browser.py runs it as deployed, in a real browser.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from rq import Queue
from werkzeug.test import TestResponse

from cli.main import EXIT_USAGE, main
from console import status
from console.app import create_app, session_key
from models.db import Database
from runtime.config import ConfigError, ConsoleConfig
from tests.conftest import PAYLOADS, TENANT_A, Backend, fresh_postgres_backend, make_pipeline, seed
from tests.test_failures import BROKEN, _enqueue, _exhaust_retries

TOKEN = "console-token-for-the-tests-4f1c"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Console:
    app: Flask
    db: Database
    queue: Queue
    failed_job: str

    def get(self, path: str, token: str | None = TOKEN) -> TestResponse:
        return self.app.test_client().get(path, headers=_bearer(token))

    def post(self, path: str, data: dict[str, str], token: str | None = TOKEN) -> TestResponse:
        return self.app.test_client().post(path, data=data, headers=_bearer(token))

    def failed(self) -> list[str]:
        return self.queue.failed_job_registry.get_job_ids()


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def build(backend: Backend) -> Console:
    """Sample bodies processed and one body that cannot be, out of retries in the failed registry."""
    seed(backend.db)
    pipeline = make_pipeline(backend)
    for name in ("text_reply.json", "status_delivered.json", "order_known_products.json"):
        pipeline.deliver((PAYLOADS / name).read_bytes())
    queue = pipeline.services.queue
    _enqueue(queue, [BROKEN])
    pipeline.drain()
    job = _exhaust_retries(queue)
    pipeline.drain()
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    config = ConsoleConfig(
        database_url=backend.db.engine.url.render_as_string(hide_password=False),
        redis_url=backend.redis_url,
        token=TOKEN,
        queue=queue.name,
    )
    app = create_app(config, db=backend.db, redis=backend.redis)
    return Console(app, backend.db, queue, job.id)


@pytest.fixture(scope="module")
def console(postgres_db: Database, redis_url: str) -> Iterator[Console]:
    """One console for the tests that change nothing. Built once because each drain above runs a worker,
    and a worker can take a minute to stop: rq 3.0 runs its pub/sub listener with a 60 s sleep, and
    redis-py 8.2 waits for that listener to finish, which it may do only when the sleep ends."""
    with fresh_postgres_backend(postgres_db, redis_url) as backend:
        yield build(backend)


def test_the_status_page_shows_the_queue_the_failed_job_and_the_last_bodies(console: Console) -> None:
    page = console.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for section in ("intake", "queue", "failed", "bodies", "analytics"):
        assert f'<section id="{section}">' in html
    assert console.failed_job in html
    assert "BodyFailed" in html and "NotAWebhook" in html  # the job's error and its body's own
    assert '<td class="processed">processed</td>' in html and '<td class="failed">failed</td>' in html
    assert f'src="/chart/{TENANT_A.phone_number_id}.png?days=30"' in html
    assert "No worker is registered" in html


def test_intake_counts_every_distinct_body_stored_the_failed_one_too(console: Console) -> None:
    windows = status.intake(console.db)
    assert [(w.label, w.received, w.processed) for w in windows] == [
        ("last minute", 4, 3),
        ("last 5 minutes", 4, 3),
        ("last hour", 4, 3),
    ]
    assert windows[1].per_minute == 0.8


def test_the_chart_is_the_tenants_png(console: Console) -> None:
    chart = console.get(f"/chart/{TENANT_A.phone_number_id}.png?days=7")
    assert chart.status_code == 200 and chart.mimetype == "image/png"
    assert chart.data.startswith(PNG)
    assert console.get("/chart/199999999999999.png").status_code == 404


def test_the_queue_dashboard_lists_the_queue_and_its_failed_job(console: Console) -> None:
    assert console.get("/rq/").status_code == 200
    queues = console.get("/rq/0/data/queues.json").get_json()["queues"]
    (ours,) = [q for q in queues if q["name"] == console.queue.name]
    assert ours["failed_job_registry_count"] == 1
    failed = console.get(f"/rq/0/data/jobs/{console.queue.name}/failed/8/asc/1.json").get_json()
    assert [job["id"] for job in failed["jobs"]] == [console.failed_job]
    # Deleting is switched off: the status page and the dashboard only requeue.
    deleted = console.post(f"/rq/job/{console.failed_job}/delete", {})
    assert deleted.get_json() == {"status": "DISABLED"}
    assert console.failed() == [console.failed_job]


ROUTES = [
    ("GET", "/"),
    ("GET", f"/chart/{TENANT_A.phone_number_id}.png"),
    ("GET", "/no-such-page"),
    ("GET", "/rq/"),
    ("GET", "/rq/0/data/queues.json"),
    ("GET", "/rq/static/js/jquery-3.5.1.min.js"),
    ("POST", "/requeue"),
    ("GET", "/rq/requeue/{queue}"),
    ("POST", "/rq/job/{job}/requeue"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "not-the-console-token", f"{TOKEN}x"])
def test_every_route_refuses_without_the_token(
    console: Console, method: str, path: str, token: str | None
) -> None:
    path = path.format(queue=console.queue.name, job=console.failed_job)
    answer = console.app.test_client().open(path, method=method, data={"all": "1"}, headers=_bearer(token))
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="wahooks console"'
    assert 'name="token"' in answer.get_data(as_text=True)  # the login form, and nothing else
    assert console.failed() == [console.failed_job]


def test_a_cookie_signed_with_another_key_is_refused(console: Console) -> None:
    forger = Flask("forger")
    forger.secret_key = session_key("another-console-token-0123")
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    client = console.app.test_client()
    client.set_cookie("wahooks_console", serializer.dumps({"operator": True}))
    assert client.get("/").status_code == 401


def test_login_sets_a_private_cookie_that_opens_the_pages_until_logout(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    client = console.app.test_client()
    with caplog.at_level(logging.WARNING):
        wrong = client.post("/login", data={"token": "guess-what-the-token-is"})
    assert wrong.status_code == 401 and "not the console" in wrong.get_data(as_text=True)
    assert "console login refused" in caplog.text and "guess-what" not in caplog.text
    signed_in = client.post("/login", data={"token": TOKEN})
    assert signed_in.status_code == 303
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert client.get("/").status_code == 200
    assert client.get(f"/chart/{TENANT_A.phone_number_id}.png").status_code == 200
    assert client.get("/rq/0/data/workers.json").status_code == 200
    client.post("/logout")
    assert client.get("/").status_code == 401


def test_the_configuration_needs_a_long_token() -> None:
    env = {"DATABASE_URL": "postgresql://db/wahooks", "REDIS_URL": "redis://redis:6379/0"}
    with pytest.raises(ConfigError, match=r"^CONSOLE_TOKEN is not set: the console is off"):
        ConsoleConfig.from_env(env)
    with pytest.raises(ConfigError, match="CONSOLE_TOKEN must be at least 16 characters"):
        ConsoleConfig.from_env({**env, "CONSOLE_TOKEN": "short"})
    config = ConsoleConfig.from_env({**env, "CONSOLE_TOKEN": TOKEN})
    assert config.token == TOKEN and TOKEN not in repr(config)


def test_wahooks_console_refuses_to_start_without_its_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root_logging: None
) -> None:
    monkeypatch.delenv("CONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/wahooks")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    assert main(["console", "--port", "1"]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("wahooks console: CONSOLE_TOKEN is not set")


# Last: its fresh backend empties the tables and the Redis database the module's console reads.
def test_requeue_puts_a_failed_job_back_on_the_queue(postgres_backend: Backend) -> None:
    console = build(postgres_backend)
    assert console.post("/requeue", {"job_id": console.failed_job}).status_code == 303
    assert console.failed() == []
    assert console.queue.get_job_ids() == [console.failed_job]
    client = console.app.test_client()
    client.post("/requeue", data={"job_id": console.failed_job}, headers=_bearer(TOKEN))
    said = client.get("/", headers=_bearer(TOKEN)).get_data(as_text=True)
    assert "no longer in the failed registry" in said
