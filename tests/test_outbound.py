"""Outbound work end to end against the fake Graph API: webhook -> worker (the request recorded with its
row) -> outbound queue -> Graph API, exactly once under redelivery and concurrent workers; throttling,
permanent and transient errors; a worker dying between commit and enqueue; media checked and kept; the
token out of logs, job data and listings."""

import hashlib
import io
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import func, select, update

from cli.main import main
from models import (
    OUTBOUND,
    MediaFile,
    OutboundRequest,
    WhatsAppAnalytics,
    WhatsAppBusinessSettings,
    WhatsAppMessage,
)
from outbound import hook, intents, jobs, reconcile, runner
from outbound.config import GraphConfig
from outbound.services import OutboundServices, install
from outbound.tokens import KEYS_VARIABLE, Tokens, new_key, token_box
from tests.conftest import TENANT_A, Backend, Pipeline, make_pipeline, seed
from tests.fake_graph import (
    Failure,
    FakeGraph,
    body,
    error_body,
    image_message,
    order_message,
    status,
    text_message,
)
from workers import jobs as processing
from workers.tenants import TenantDirectory

TOKEN = "EAAG-outbound-default-token-41c2"
PNID = TENANT_A.phone_number_id
ORDER_ITEMS = [("SKU-TEE", 1, "19.99"), ("SKU-MUG", 2, "8.5")]


class Outbound:
    """A seeded backend's intake pipeline and outbound services, wired as the worker commands wire them."""

    def __init__(self, backend: Backend, graph: FakeGraph, media_dir: Path, tokens: Tokens) -> None:
        seed(backend.db)
        self.backend = backend
        self.graph = graph
        self.pipeline: Pipeline = make_pipeline(backend)
        queue = Queue(f"{self.pipeline.services.queue.name}-outbound", connection=backend.redis)
        hook.install(queue)
        self.sleeps: list[float] = []
        self.svc = OutboundServices(
            backend.db,
            backend.redis,
            queue,
            GraphConfig(graph.url, tokens, media_dir),
            sleep=self.sleeps.append,
        )
        install(self.svc)

    def configure(self, **settings: Any) -> None:
        with self.backend.db.session() as session:
            session.execute(
                update(WhatsAppBusinessSettings)
                .where(WhatsAppBusinessSettings.phone_number_id == PNID)
                .values(**settings)
            )
        hook.install(self.svc.queue)  # settings are remembered for 10 s: forget them

    def work(self) -> None:
        runner.run(self.svc, burst=True)

    def requests(self) -> list[OutboundRequest]:
        with self.backend.db.session() as session:
            return list(session.scalars(select(OutboundRequest).order_by(OutboundRequest.id)))


@pytest.fixture
def outbound(sqlite_backend: Backend, graph: FakeGraph, tmp_path: Path) -> Iterator[Outbound]:
    yield Outbound(sqlite_backend, graph, tmp_path / "media", Tokens(default=TOKEN))
    hook.install(None)


@pytest.fixture
def any_outbound(backend: Backend, graph: FakeGraph, tmp_path: Path) -> Iterator[Outbound]:
    """Embedded (SQLite, fakeredis) and on real PostgreSQL and Redis."""
    yield Outbound(backend, graph, tmp_path / "media", Tokens(default=TOKEN))
    hook.install(None)


@pytest.fixture
def pg_outbound(postgres_backend: Backend, graph: FakeGraph, tmp_path: Path) -> Iterator[Outbound]:
    yield Outbound(postgres_backend, graph, tmp_path / "media", Tokens(default=TOKEN))
    hook.install(None)


def test_each_new_message_is_marked_read_once_never_for_a_redelivery(any_outbound: Outbound) -> None:
    outbound = any_outbound
    outbound.configure(mark_read_on_receipt=True, typing_indicator=True)
    fresh = body(PNID, messages=[text_message("wamid.READ-1")])
    old = body(PNID, messages=[text_message("wamid.READ-OLD", timestamp=int(time.time()) - 3600)])
    for _ in range(3):  # Meta redelivers
        outbound.pipeline.replay(fresh, old)
    outbound.work()
    assert outbound.graph.reads == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.READ-1",
            "typing_indicator": {"type": "text"},
        },
        # An hour-old message is marked read without a typing indicator: Meta drops one after 25 s.
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.READ-OLD"},
    ]
    assert [(r.kind, r.state, r.attempts) for r in outbound.requests()] == [("mark_read", "done", 1)] * 2
    outbound.work()  # nothing is left to do
    assert len(outbound.graph.reads) == 2


def test_nothing_is_sent_for_a_tenant_with_every_setting_off(outbound: Outbound) -> None:
    outbound.pipeline.replay(body(PNID, messages=[order_message("wamid.ORDER-OFF", ORDER_ITEMS)]))
    outbound.work()
    assert outbound.requests() == [] and outbound.graph.requests == []


def test_a_new_order_gets_exactly_one_confirmation_whose_statuses_count_once(any_outbound: Outbound) -> None:
    outbound = any_outbound
    outbound.configure(confirm_orders=True)
    order = body(PNID, messages=[order_message("wamid.ORDER-1", ORDER_ITEMS)])
    for _ in range(3):
        outbound.pipeline.replay(order)
    outbound.work()
    (request,) = outbound.requests()
    (sent,) = outbound.graph.sends
    assert sent == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551230001",
        "type": "text",
        "text": {
            "body": "Thank you for your order! We received:\n1 x Acme Tee (19.99 USD)"
            "\n2 x Acme Mug (8.50 USD)\nTotal: 36.99 USD",
            "preview_url": False,
        },
        "context": {"message_id": "wamid.ORDER-1"},
        "biz_opaque_callback_data": reconcile.callback_data(request.id),
    }
    assert (request.state, request.result_wamid) == ("done", "wamid.FAKE-SENT-1")
    db = outbound.backend.db
    with db.session() as session:
        row = session.scalars(
            select(WhatsAppMessage).where(WhatsAppMessage.wamid == "wamid.FAKE-SENT-1")
        ).one()
        assert (row.direction, row.status, row.message_type, row.context_wamid) == (
            OUTBOUND,
            "accepted",
            "text",
            "wamid.ORDER-1",
        )
        assert row.body is not None and row.body.endswith("Total: 36.99 USD")
        assert row.biz_opaque_callback_data == reconcile.callback_data(request.id)
    sent_status = body(
        PNID, statuses=[status("wamid.FAKE-SENT-1", "sent", reconcile.callback_data(request.id))]
    )
    delivered = body(PNID, statuses=[status("wamid.FAKE-SENT-1", "delivered")])
    outbound.pipeline.replay(sent_status, delivered, sent_status)
    with db.session() as session:
        assert (
            session.scalar(select(WhatsAppMessage.status).where(WhatsAppMessage.wamid == "wamid.FAKE-SENT-1"))
            == "delivered"
        )
        assert session.scalar(select(func.sum(WhatsAppAnalytics.messages_sent))) == 1
        assert session.scalar(select(func.sum(WhatsAppAnalytics.orders_count))) == 1


def test_a_template_confirmation_and_a_customer_known_only_by_user_id(outbound: Outbound) -> None:
    outbound.configure(confirm_orders=True, order_confirmation_template="order_received", language_code="de")
    message = {**order_message("wamid.ORDER-BSUID", ORDER_ITEMS), "from_user_id": "US.13491208655302741918"}
    del message["from"]
    contacts = [{"profile": {"name": "Ana"}, "user_id": "US.13491208655302741918"}]
    outbound.pipeline.replay(body(PNID, messages=[message], contacts=contacts))
    outbound.work()
    (sent,) = outbound.graph.sends
    assert "to" not in sent and sent["recipient"] == "US.13491208655302741918"
    assert sent["template"] == {
        "name": "order_received",
        "language": {"code": "de"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "1 x Acme Tee, 2 x Acme Mug"},
                    {"type": "text", "text": "36.99 USD"},
                ],
            }
        ],
    }


def test_concurrent_workers_make_each_call_once(pg_outbound: Outbound) -> None:
    """4 intake workers write the same redelivered bodies at once, then 4 outbound workers race for every
    request, each of them enqueued 4 times over."""
    outbound = pg_outbound
    outbound.configure(mark_read_on_receipt=True, confirm_orders=True)
    bodies = [body(PNID, messages=[text_message(f"wamid.RACE-{i}")]) for i in range(5)]
    bodies += [body(PNID, messages=[order_message(f"wamid.RACE-ORDER-{i}", ORDER_ITEMS)]) for i in range(2)]
    db = outbound.backend.db
    start = threading.Barrier(4)

    def intake(n: int) -> None:
        directory = TenantDirectory()
        start.wait()
        processing.process(db, directory, list(reversed(bodies)) if n % 2 else bodies, f"intake-{n}")

    _in_threads(intake)
    requests = outbound.requests()
    assert sorted(r.kind for r in requests) == ["mark_read"] * 7 + ["order_confirmation"] * 2
    ids = [r.id for r in requests]

    def work(n: int) -> None:
        start.wait()
        for request_id in ids * 4:
            jobs.run(outbound.svc, request_id, f"job-{n}-{request_id}")

    _in_threads(work)
    assert sorted(r["message_id"] for r in outbound.graph.reads) == sorted(
        [f"wamid.RACE-{i}" for i in range(5)] + [f"wamid.RACE-ORDER-{i}" for i in range(2)]
    )
    assert sorted(s["context"]["message_id"] for s in outbound.graph.sends) == [
        "wamid.RACE-ORDER-0",
        "wamid.RACE-ORDER-1",
    ]
    assert {(r.state, r.attempts) for r in outbound.requests()} == {("done", 1)}


def _in_threads(target: Any) -> None:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            target(n)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_a_throttled_request_waits_as_long_as_meta_says(outbound: Outbound) -> None:
    outbound.configure(mark_read_on_receipt=True)
    usage = (
        '{"200000000000001": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 2}]}'
    )
    outbound.graph.fail(
        f"/{PNID}/messages",
        Failure(429, error_body(130429, "Rate limit hit"), {"X-Business-Use-Case-Usage": usage}),
    )
    outbound.pipeline.replay(body(PNID, messages=[text_message("wamid.THROTTLED")]))
    outbound.work()
    (request,) = outbound.requests()
    assert request.state == "pending" and request.attempts == 1 and request.not_before is not None
    wait = request.not_before.replace(tzinfo=UTC) - intents.utcnow()  # SQLite: naive, in UTC
    assert timedelta(seconds=110) < wait <= timedelta(seconds=120)
    assert outbound.sleeps == []  # never slept by a worker
    outbound.work()  # not due yet: nothing is called
    assert len(outbound.graph.calls("POST", "/messages")) == 1
    with outbound.backend.db.session() as session:  # two minutes later
        session.execute(update(OutboundRequest).values(not_before=intents.utcnow() - timedelta(seconds=1)))
    outbound.work()
    assert [(r.state, r.attempts) for r in outbound.requests()] == [("done", 2)]


def test_a_permanent_error_fails_the_request_at_once_with_meta_s_message(outbound: Outbound) -> None:
    outbound.configure(confirm_orders=True)
    outbound.graph.fail(f"/{PNID}/messages", Failure(400, error_body(131047, "Re-engagement message")))
    outbound.pipeline.replay(body(PNID, messages=[order_message("wamid.ORDER-LATE", ORDER_ITEMS)]))
    outbound.work()
    (request,) = outbound.requests()
    assert request.state == "failed"
    assert request.error == "Graph API error 131047: Re-engagement message [HTTP 400, fbtrace_id AbCdEf]"
    queue = outbound.svc.queue
    assert queue.failed_job_registry.count == 1 and queue.scheduled_job_registry.count == 0
    assert len(outbound.graph.calls("POST", "/messages")) == 1


def test_a_transient_error_is_retried_by_rq_with_the_request_pending(outbound: Outbound) -> None:
    outbound.configure(mark_read_on_receipt=True)
    outbound.graph.fail(f"/{PNID}/messages", *[Failure(500, error_body(2, "Service unavailable"))] * 4)
    outbound.pipeline.replay(body(PNID, messages=[text_message("wamid.FLAKY")]))
    outbound.work()
    (request,) = outbound.requests()
    assert (request.state, request.attempts) == ("pending", 1)
    assert len(outbound.sleeps) == 3  # the client's own bounded retries, then RQ's
    queue = outbound.svc.queue
    (job_id,) = queue.scheduled_job_registry.get_job_ids()
    jobs.run(outbound.svc, request.id, job_id)  # RQ's retry, once due
    assert [(r.state, r.attempts) for r in outbound.requests()] == [("done", 2)]


def test_a_worker_dying_between_commit_and_enqueue_loses_no_request(outbound: Outbound) -> None:
    outbound.configure(mark_read_on_receipt=True)
    hook.install(None)  # the commit happens, the enqueue after it never does
    outbound.pipeline.replay(body(PNID, messages=[text_message("wamid.ORPHAN")]))
    outbound.work()
    assert [r.state for r in outbound.requests()] == ["pending"] and outbound.graph.reads == []
    swept = runner.sweep(outbound.svc, now=intents.utcnow() + runner.STALE_ENQUEUE + timedelta(seconds=1))
    assert swept.enqueued == 1
    outbound.work()
    assert [r.state for r in outbound.requests()] == ["done"] and len(outbound.graph.reads) == 1


def test_media_is_downloaded_checked_and_recorded(outbound: Outbound, tmp_path: Path) -> None:
    outbound.configure(download_media=True)
    outbound.graph.media["MEDIA-1"] = (b"\xff\xd8\xff\xe0 a small jpeg" * 1000, "image/jpeg")
    outbound.graph.media["MEDIA-2"] = (b"corrupted on the way", "image/jpeg")
    outbound.graph.served_sha256["MEDIA-2"] = "00" * 32
    outbound.pipeline.replay(
        body(
            PNID, messages=[image_message("wamid.IMG-1", "MEDIA-1"), image_message("wamid.IMG-2", "MEDIA-2")]
        )
    )
    outbound.work()
    states = {r.subject_wamid: r.state for r in outbound.requests()}
    assert states == {"wamid.IMG-1": "done", "wamid.IMG-2": "pending"}  # a bad download is tried again
    with outbound.backend.db.session() as session:
        (kept,) = session.scalars(select(MediaFile))
    path = Path(kept.path)
    assert path.read_bytes() == outbound.graph.media["MEDIA-1"][0]
    assert path.name == "MEDIA-1.jpg" and kept.mime_type == "image/jpeg"
    assert kept.size == path.stat().st_size and kept.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["MEDIA-1.jpg"]  # nothing half-written left


def test_media_fetch_command(
    outbound: Outbound,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    outbound.graph.media["MEDIA-9"] = (b"%PDF-1.7 invoice", "application/pdf")
    outbound.pipeline.replay(body(PNID, messages=[image_message("wamid.DOC-9", "MEDIA-9")]))
    monkeypatch.setenv("DATABASE_URL", outbound.backend.db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("WHATSAPP_GRAPH_URL", outbound.graph.url)
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", TOKEN)
    assert main(["media", "fetch", "wamid.DOC-9", "--dir", str(tmp_path / "fetched")]) == 0
    (saved,) = (tmp_path / "fetched").rglob("MEDIA-9*")
    assert saved.read_bytes() == b"%PDF-1.7 invoice" and str(saved) in capsys.readouterr().out


def test_a_tenant_s_own_token_stays_out_of_logs_job_data_and_listings(
    sqlite_backend: Backend,
    graph: FakeGraph,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    own = "EAAG-tenant-own-token-5e77aa"
    tokens = Tokens(box=token_box({KEYS_VARIABLE: new_key()}))
    outbound = Outbound(sqlite_backend, graph, tmp_path, tokens)
    outbound.configure(
        mark_read_on_receipt=True, confirm_orders=True, access_token_encrypted=tokens.encrypt(own)
    )
    caplog.set_level("DEBUG")
    graph.fail(
        f"/{PNID}/messages",
        Failure(500, error_body(1, "unknown")),
        Failure(400, error_body(190, "Error validating access token")),
    )
    outbound.pipeline.replay(
        body(PNID, messages=[text_message("wamid.TOK-1"), order_message("wamid.TOK-ORDER", ORDER_ITEMS)])
    )
    outbound.work()
    assert graph.tokens == {f"Bearer {own}"}
    assert own not in caplog.text
    redis = sqlite_backend.redis
    for key in redis.keys("*"):
        kind = redis.type(key)
        values = list(redis.hgetall(key).values()) if kind == b"hash" else []
        values += redis.lrange(key, 0, -1) if kind == b"list" else []
        values += [redis.get(key) or b""] if kind == b"string" else []
        for value in values:
            assert own.encode() not in value and own.encode() not in _unzip(value)
    assert all(own not in (r.error or "") for r in outbound.requests())
    monkeypatch.setenv("DATABASE_URL", sqlite_backend.db.engine.url.render_as_string(hide_password=False))
    assert main(["tenants", "list"]) == 0
    assert own not in capsys.readouterr().out
    hook.install(None)


def _unzip(value: bytes) -> bytes:
    try:
        return zlib.decompress(value)
    except zlib.error:
        return b""


def test_an_unknown_send_is_reconciled_from_its_status(outbound: Outbound) -> None:
    outbound.configure(confirm_orders=True)
    outbound.graph.fail(f"/{PNID}/messages", Failure(502, None))  # Meta may have sent it
    outbound.pipeline.replay(body(PNID, messages=[order_message("wamid.ORDER-502", ORDER_ITEMS)]))
    outbound.work()
    (request,) = outbound.requests()
    assert request.state == "unknown" and len(outbound.graph.calls("POST", "/messages")) == 1
    outbound.work()
    assert len(outbound.graph.calls("POST", "/messages")) == 1  # never sent again
    callback = reconcile.callback_data(request.id)
    outbound.pipeline.replay(body(PNID, statuses=[status("wamid.FROM-META-1", "sent", callback)]))
    assert runner.sweep(outbound.svc).reconciled == 1
    (request,) = outbound.requests()
    assert (request.state, request.result_wamid) == ("done", "wamid.FROM-META-1")
    with outbound.backend.db.session() as session:
        assert (
            session.scalar(
                select(WhatsAppMessage.context_wamid).where(WhatsAppMessage.wamid == "wamid.FROM-META-1")
            )
            == "wamid.ORDER-502"
        )


def test_money_is_shown_to_the_cent_unless_it_has_more() -> None:
    from outbound.confirmation import money

    assert money(Decimal("36.9900"), "USD") == "36.99 USD"
    assert money(Decimal("1.2345"), "KWD") == "1.2345 KWD"
    assert money(Decimal("10"), None) == "10.00"


def test_the_tenant_commands_set_features_and_keep_tokens_encrypted(
    sqlite_backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    seed(sqlite_backend.db)
    old, new = new_key(), new_key()
    monkeypatch.setenv("DATABASE_URL", sqlite_backend.db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv(KEYS_VARIABLE, old)
    configure = ["tenants", "configure", "--phone-number-id", PNID]
    assert (
        main([*configure, "--mark-read", "--confirm-orders", "--confirmation-text", "Hi $name: $total"]) == 0
    )
    assert main([*configure, "--no-mark-read", "--typing-indicator"]) == 0
    own = "EAAG-set-by-command-0b5c"
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{own}\n"))
    assert main(["tenants", "set-token", "--phone-number-id", PNID]) == 0
    with sqlite_backend.db.session() as session:
        settings = session.scalars(
            select(WhatsAppBusinessSettings).where(WhatsAppBusinessSettings.phone_number_id == PNID)
        ).one()
    assert (settings.mark_read_on_receipt, settings.typing_indicator, settings.confirm_orders) == (
        False,
        True,
        True,
    )
    assert settings.order_confirmation_text == "Hi $name: $total"
    stored = settings.access_token_encrypted
    assert stored is not None and own not in stored
    monkeypatch.setenv(KEYS_VARIABLE, f"{new},{old}")
    assert main(["tenants", "rotate-tokens"]) == 0
    with sqlite_backend.db.session() as session:
        rotated = session.scalar(
            select(WhatsAppBusinessSettings.access_token_encrypted).where(
                WhatsAppBusinessSettings.phone_number_id == PNID
            )
        )
    assert rotated != stored
    assert Tokens(box=token_box({KEYS_VARIABLE: new})).for_tenant(1, rotated or "") == own
    assert main(["tenants", "list"]) == 0
    assert own not in capsys.readouterr().out
