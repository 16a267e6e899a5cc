"""The console as deployed, seen in a real browser: `wahooks console` and `wahooks worker` processes on real
PostgreSQL and Redis, driven by Playwright in Debian's headless Chromium.

The sample payloads are processed by the worker, and one body PostgreSQL refuses (a CHECK constraint) runs
out of retries into the failed registry; the constraint is then dropped, so a requeue can succeed. The
tests run in file order: the last one requeues.

Where chromium (`apt-get install -y chromium`) or playwright (the test extra) is missing the tests are
skipped, and fail under WAHOOKS_REQUIRE_SERVICES=1, as in `.ci/run`, which installs both. Playwright's own
browser downloads are never used. WAHOOKS_SCREENSHOTS=DIR saves the README's two pictures there:
`WAHOOKS_SCREENSHOTS=docs .venv/bin/pytest tests/test_console_browser.py`.
"""

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from rq import Queue
from sqlalchemy import func, select, text

from models import Tenant, WebhookEvent, WhatsAppAnalytics, WhatsAppMessage
from models.db import Database
from runtime.inbox import body_digest
from tests.conftest import PAYLOADS, TENANT_A, fresh_postgres_backend, make_pipeline, seed
from tests.processes import Workers, free_port, wait_until
from tests.services import skip_or_fail
from tests.test_secrets import exhaust_retries, text_message
from throwaway import Child, start

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-console-token-5e2a9c71"
REFUSED_WAMID = "wamid.CONSOLE-REFUSED-UNTIL-FIXED"
REFUSED = text_message(REFUSED_WAMID, "4915112345678", "Console Test", "refused until the fix")
VIEWPORT = {"width": 1280, "height": 900}


@dataclass
class Deployment:
    url: str
    db: Database
    queue: Queue
    failed_job: str
    console: Child

    def failed(self) -> list[str]:
        return self.queue.failed_job_registry.get_job_ids()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 401
    except requests.ConnectionError:
        return False


def outcome_of(db: Database, body: bytes) -> str | None:
    with db.session() as session:
        return session.scalar(select(WebhookEvent.outcome).where(WebhookEvent.sha256 == body_digest(body)))


def all_outcomes_known(db: Database, bodies: list[bytes]) -> bool:
    with db.session() as session:
        known = session.scalar(
            select(func.count()).where(
                WebhookEvent.sha256.in_({body_digest(b) for b in bodies}), WebhookEvent.outcome.is_not(None)
            )
        )
    return known == len(set(bodies))


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def deployment(
    browser: "Browser", postgres_db: Database, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with fresh_postgres_backend(postgres_db, redis_url) as backend:
        seed(backend.db)
        with backend.db.session() as session:
            session.execute(
                text(
                    "ALTER TABLE whatsapp_messages ADD CONSTRAINT refuse_for_the_console"
                    f" CHECK (wamid <> '{REFUSED_WAMID}') NOT VALID"
                )
            )
        web = make_pipeline(backend)  # the webhook app in process: signed POSTs into the real inbox
        queue = web.services.queue
        env = {
            **os.environ,
            "DATABASE_URL": backend.db.engine.url.render_as_string(hide_password=False),
            "REDIS_URL": redis_url,
            "WAHOOKS_QUEUE": queue.name,
            "CONSOLE_TOKEN": TOKEN,
            "LOG_FORMAT": "json",
        }
        workers = Workers(env)
        port = free_port()
        log = tmp_path_factory.mktemp("console") / "console.log"
        argv = [sys.executable, "-m", "cli.main", "console", "--port", str(port)]
        console = start("console", argv, env, log)
        try:
            workers.start(1)
            bodies = [path.read_bytes() for path in sorted(PAYLOADS.glob("*.json"))]
            web.deliver(*bodies, REFUSED)
            wait_until(lambda: all_outcomes_known(backend.db, bodies), 60, "the worker storing the samples")
            exhaust_retries(queue)
            wait_until(lambda: bool(queue.failed_job_registry.get_job_ids()), 30, "the refused body failing")
            with backend.db.session() as session:
                session.execute(text("ALTER TABLE whatsapp_messages DROP CONSTRAINT refuse_for_the_console"))
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: answers(url), 30, "the console answering")
            (failed_job,) = queue.failed_job_registry.get_job_ids()
            yield Deployment(url, backend.db, queue, failed_job, console)
        finally:
            console.stop()
            workers.stop_all()
            with backend.db.session() as session:
                session.execute(
                    text("ALTER TABLE whatsapp_messages DROP CONSTRAINT IF EXISTS refuse_for_the_console")
                )


def signed_in(browser: "Browser", deployment: Deployment) -> "Page":
    """A fresh browser context that has signed in through the login form."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    answer = page.goto(deployment.url)
    assert answer is not None and answer.status == 401
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("section#failed")
    return page


def screenshot(page: "Page", name: str, selector: str | None = None) -> None:
    """Save a README picture when WAHOOKS_SCREENSHOTS names a folder."""
    folder = os.environ.get("WAHOOKS_SCREENSHOTS")
    if not folder:
        return
    path = Path(folder) / name
    if selector is None:
        page.screenshot(path=path, full_page=True)
    else:
        page.locator(selector).screenshot(path=path)


def test_without_the_token_the_browser_gets_the_login_form_and_nothing_else(
    browser: "Browser", deployment: Deployment
) -> None:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    for path in ("/", f"/chart/{TENANT_A.phone_number_id}.png", "/rq/", "/rq/0/view/workers"):
        answer = page.goto(deployment.url + path)
        assert answer is not None and answer.status == 401, path
        assert page.locator("input[name=token]").is_visible()
        assert page.locator("section").count() == 0
    page.fill("input[name=token]", "not the console's token")
    page.click("button[type=submit]")
    assert page.locator("#login-error").is_visible()
    assert page.locator("section").count() == 0
    answer = page.request.post(f"{deployment.url}/requeue", form={"all": "1"})
    assert answer.status == 401
    assert deployment.failed() == [deployment.failed_job]


def test_the_status_page_renders_with_the_failed_job_and_the_tenants_chart(
    browser: "Browser", deployment: Deployment
) -> None:
    page = signed_in(browser, deployment)
    for heading in ("Intake", "Queue", "Failed jobs (1)", "Last bodies", "Analytics"):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible(), heading
    row = page.locator(f"tr.failed-job[data-job='{deployment.failed_job}']")
    assert row.is_visible()
    assert "BodyFailed" in row.inner_text() and "refuse_for_the_console" in row.inner_text()
    assert page.locator("#workers tr").count() == 2  # the heading and the one worker process
    assert int(page.locator("#failed-count").inner_text()) == 1
    assert page.locator("td.processed").count() > 0

    with deployment.db.session() as session:
        rows = session.scalar(
            select(func.count())
            .select_from(WhatsAppAnalytics)
            .join(Tenant, Tenant.id == WhatsAppAnalytics.tenant_id)
            .where(Tenant.name == TENANT_A.name)
        )
    assert rows, "the tenant the chart draws has no analytics rows"
    chart = page.locator("img#chart")
    chart.scroll_into_view_if_needed()
    assert chart.is_visible()
    page.wait_for_function("document.querySelector('img#chart').complete")
    width, height = chart.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert width > 0 and height > 0
    screenshot(page, "console-status.png")
    screenshot(page, "console-chart.png", "img#chart")


def test_the_queue_dashboard_shows_the_queue_the_worker_and_the_failed_job(
    browser: "Browser", deployment: Deployment
) -> None:
    """rq-dashboard draws its tables with JavaScript from its JSON routes: wait for the rows."""
    page = signed_in(browser, deployment)
    name = deployment.queue.name
    page.goto(f"{deployment.url}/rq/")
    queue = page.locator("table#queues tr[data-role=queue]", has_text=name)
    queue.wait_for()
    assert queue.locator("td.failed a").first.inner_text().strip() == "1"
    page.goto(f"{deployment.url}/rq/0/view/workers")
    page.locator("table#workers tr[data-role=worker]", has_text=name).wait_for()
    page.goto(f"{deployment.url}/rq/0/view/jobs/{name}/failed/8/asc/1")
    page.locator(f"table#jobs tr[data-role=job][data-job-id='{deployment.failed_job}']").wait_for()


def test_requeue_from_the_page_gets_the_failed_job_processed(
    browser: "Browser", deployment: Deployment
) -> None:
    page = signed_in(browser, deployment)
    page.locator(f"tr.failed-job[data-job='{deployment.failed_job}'] button").click()
    page.get_by_role("status").filter(has_text="1 job requeued.").wait_for()
    wait_until(lambda: outcome_of(deployment.db, REFUSED) == "processed", 30, "the requeued body processed")
    assert deployment.failed() == []
    with deployment.db.session() as session:
        stored = session.scalar(select(func.count()).where(WhatsAppMessage.wamid == REFUSED_WAMID))
    assert stored == 1
    page.reload()
    assert page.get_by_text("The failed registry is empty.").is_visible()
