"""`wahooks dev`: the whole pipeline in one process, no servers: SQLite, an in-process Redis, one worker.

Same code path as production (Flask app -> Redis inbox -> pump -> RQ job -> database); only the
connections point elsewhere.
"""

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fakeredis
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cli import analytics, catalog, replay, tenants
from cli.migrate import upgrade
from models import WebhookEvent, WhatsAppAnalytics, WhatsAppMessage, WhatsAppOrder
from models.db import Database, data_folder
from runtime.config import DEFAULT_QUEUE, WebConfig, WorkerConfig
from webhook.app import create_app
from workers import runner, services

DEMO_TENANTS = (
    tenants.NewTenant("Acme", "100000000000001", "200000000000001", "15550000001"),
    tenants.NewTenant("Bravo", "100000000000002", "200000000000002", "15550000002"),
)
DEMO_CATALOG_ID = "300000000000001"
DEMO_CHART = "wahooks-dev-analytics.png"  # one file a tenant: -PHONE_NUMBER_ID before .png
DEV_SECRET = "dev-app-secret"  # the embedded server's default: a demo value, printed


@dataclass(frozen=True)
class Embedded:
    url: str
    secret: str
    services: services.Services


@contextmanager
def serving(database_url: str, port: int) -> Iterator[Embedded]:
    """Migrate, then serve the webhook on 127.0.0.1:port backed by an in-process Redis."""
    upgrade(database_url)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the demo
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    # The first of the secrets, as the web app reads them (several while one is rotated).
    secret = os.environ.get("WHATSAPP_APP_SECRET", DEV_SECRET).split(",")[0].strip() or DEV_SECRET
    web = WebConfig(
        redis_url="redis://embedded",
        app_secrets=(secret,),
        verify_token=os.environ.get("WHATSAPP_VERIFY_TOKEN", "dev-verify-token"),
        queue=DEFAULT_QUEUE,
    )
    work = WorkerConfig(
        database_url=database_url,
        redis_url="redis://embedded",
        default_phone_number_id=os.environ.get("WHATSAPP_PHONE_NUMBER_ID"),
        default_business_name=os.environ.get("WHATSAPP_BUSINESS_NAME", "default"),
    )
    svc = services.Services.build(work, redis=redis, db=Database(database_url))
    services.install(svc)
    server = make_server("127.0.0.1", port, create_app(web, redis=redis), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    try:
        yield Embedded(f"http://127.0.0.1:{server.server_port}/webhook", secret, svc)
    finally:
        server.shutdown()
        svc.db.dispose()


def serve(database_url: str, port: int) -> None:
    with serving(database_url, port) as embedded:
        # A real secret (WHATSAPP_APP_SECRET) is never printed; the built-in one is no secret.
        shown = repr(DEV_SECRET) if embedded.secret == DEV_SECRET else "from WHATSAPP_APP_SECRET"
        print(f"webhook: {embedded.url}  (app secret {shown}; Ctrl-C stops)", flush=True)
        runner.run(embedded.services)


def demo(database_url: str, port: int) -> dict[str, object]:
    """Replay the bundled samples through HTTP, drain the queue, and return what landed."""
    with serving(database_url, port) as embedded:
        db = embedded.services.db
        existing = {row[2] for row in tenants.listing(db)}
        for new in DEMO_TENANTS:
            if new.phone_number_id not in existing:
                tenants.add(db, new)
        # The samples are the test corpus (tests/payloads, tests/fixtures), which the wheel ships.
        catalog_csv = data_folder("wahooks_data.fixtures") / "catalog_a.csv"
        catalog.import_catalog(db, DEMO_TENANTS[0].phone_number_id, DEMO_CATALOG_ID, catalog_csv)
        samples = replay.payload_files([data_folder("wahooks_data.payloads")])
        statuses = replay.replay(embedded.url, samples, embedded.secret)
        runner.run(embedded.services, burst=True)
        return {"http": dict(statuses), **summary(db), "charts": draw_charts(db)}


def draw_charts(db: Database) -> list[Path]:
    """Each tenant's analytics chart over its stored days, beside the default database (./)."""
    from cli import charts  # matplotlib, which the server alone (`wahooks dev` without --demo) never needs

    return charts.write(Path.cwd() / DEMO_CHART, analytics.report(db, None, None, None))


def summary(db: Database) -> dict[str, object]:
    with db.session() as session:
        by_type = session.execute(
            select(WhatsAppMessage.direction, WhatsAppMessage.message_type, func.count())
            .group_by(WhatsAppMessage.direction, WhatsAppMessage.message_type)
            .order_by(WhatsAppMessage.direction, WhatsAppMessage.message_type)
        ).all()
        orders = session.execute(
            select(WhatsAppOrder.wamid, WhatsAppOrder.total_amount, WhatsAppOrder.currency)
        )
        analytics = session.execute(
            select(WhatsAppAnalytics).order_by(WhatsAppAnalytics.tenant_id, WhatsAppAnalytics.date)
        ).scalars()
        events = session.execute(
            select(WebhookEvent.outcome, func.count())
            .group_by(WebhookEvent.outcome)
            .order_by(WebhookEvent.outcome)
        ).all()
        return {
            "messages": [(d, t or "(status only)", n) for d, t, n in by_type],
            "orders": [(w, f"{total:.2f} {cur or ''}".strip()) for w, total, cur in orders],
            "analytics": [
                (
                    a.tenant_id,
                    a.date.isoformat(),
                    a.messages_received,
                    a.messages_sent,
                    a.messages_delivered,
                    a.messages_read,
                    a.messages_failed,
                    a.orders_count,
                    f"{a.order_revenue:.2f}",
                )
                for a in analytics
            ],
            "events": [(o or "pending", n) for o, n in events],
        }


def default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'wahooks-dev.db'}"
