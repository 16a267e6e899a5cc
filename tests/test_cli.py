"""The `wahooks` operator commands, run as an operator runs them: arguments and environment in, text out."""

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from rq import Queue
from sqlalchemy import func, select
from werkzeug.serving import make_server

import models.db
from cli.main import EXIT_UNAVAILABLE, EXIT_USAGE, main
from cli.replay import payload_files
from models import Tenant, WhatsAppCatalog, WhatsAppProduct
from models.db import Database
from runtime.config import WebConfig
from runtime.inbox import JOB_PATH, Inbox, InboxKeys
from tests import tables
from tests.conftest import CATALOG_CSV, PAYLOADS, SECRET, Backend, Pipeline, make_pipeline
from tests.processes import free_port
from webhook.app import create_app

UNKNOWN_NUMBER = "199999999999999"
SEQUENCES = PAYLOADS / "sequences"
SEQUENCE_FILES = len(list(SEQUENCES.rglob("*.json")))
HEADER = "retailer_id,name,price,currency\n"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def message(self) -> str:
        """The last line on stderr: what the command says went wrong (log lines may precede it)."""
        return (self.err.splitlines() or [""])[-1]


# Commands point the root logger at the current stderr: each test gets it back as it was.
pytestmark = pytest.mark.usefixtures("root_logging")

Wahooks = Callable[..., Run]


@pytest.fixture(autouse=True)
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wahooks variable leaks in from the shell that runs the tests."""
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "WAHOOKS_QUEUE",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "WHATSAPP_PHONE_NUMBER_ID",
        "WHATSAPP_BUSINESS_NAME",
        "LOG_FORMAT",
        "LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def cli_databases(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Database]]:
    """Each command opens its own Database (a process of its own in real life): close them after the test."""
    opened: list[Database] = []

    class Tracked(Database):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            opened.append(self)

    monkeypatch.setattr(models.db, "Database", Tracked)
    yield opened
    for db in opened:
        db.dispose()


@pytest.fixture
def wahooks(capsys: pytest.CaptureFixture[str]) -> Wahooks:
    def run(*argv: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def db(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A migrated, empty database of each kind, which DATABASE_URL points at."""
    monkeypatch.setenv("DATABASE_URL", url_of(backend.db))
    return backend.db


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def catalog_state(db: Database) -> list[tuple[Any, ...]]:
    """Every catalog and product row, every column."""
    with db.session() as session:
        catalogs = session.execute(select(WhatsAppCatalog.__table__).order_by(WhatsAppCatalog.id)).all()
        products = session.execute(select(WhatsAppProduct.__table__).order_by(WhatsAppProduct.id)).all()
    return [tuple(r) for r in (*catalogs, *products)]


def products(db: Database) -> dict[str, tuple[str, Decimal, str]]:
    with db.session() as session:
        rows = session.scalars(select(WhatsAppProduct)).all()
        return {p.retailer_id: (p.name, Decimal(p.price), p.currency) for p in rows}


def no_traceback(run: Run) -> bool:
    return "Traceback" not in run.err + run.out


# tenants


def test_an_added_tenant_is_listed(wahooks: Wahooks, db: Database) -> None:
    added = wahooks(
        "tenants", "add", "--name", "Acme", "--phone-number-id", "100000000000001",
        "--waba-id", "200000000000001", "--display-phone-number", "15550000001",
    )  # fmt: skip
    assert added.code == 0
    assert "added: Acme (100000000000001)" in added.out
    listed = wahooks("tenants", "list")
    assert listed.code == 0
    (row,) = listed.out.splitlines()[1:]
    assert row.split() == ["1", "Acme", "100000000000001", "200000000000001", "15550000001", "yes"]


def test_an_empty_tenant_list_is_just_the_header(wahooks: Wahooks, db: Database) -> None:
    listed = wahooks("tenants", "list")
    assert listed.code == 0
    assert listed.out.split() == ["id", "name", "phone_number_id", "waba_id", "display", "active"]


def test_a_phone_number_id_belongs_to_one_tenant(wahooks: Wahooks, db: Database) -> None:
    assert wahooks("tenants", "add", "--name", "Acme", "--phone-number-id", "100000000000001").code == 0
    again = wahooks("tenants", "add", "--name", "Impostor", "--phone-number-id", "100000000000001")
    assert again.code == EXIT_USAGE
    assert again.message == "wahooks tenants: phone number id 100000000000001 already belongs to a tenant"
    assert no_traceback(again)
    assert again.out == ""
    assert count(db, Tenant) == 1


# catalog import


def write_csv(tmp_path: Path, text: str, name: str = "catalog.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tenant(wahooks: Wahooks, db: Database) -> str:
    assert wahooks("tenants", "add", "--name", "Acme", "--phone-number-id", "100000000000001").code == 0
    return "100000000000001"


def import_catalog(wahooks: Wahooks, tenant: str, path: Path) -> Run:
    return wahooks("catalog", "import", "--phone-number-id", tenant, "--catalog-id", "300000000000001", path)


def test_a_catalog_import_creates_its_products(wahooks: Wahooks, db: Database, tenant: str) -> None:
    result = import_catalog(wahooks, tenant, CATALOG_CSV)
    assert (result.code, result.out) == (0, "catalog 300000000000001: 4 products created, 0 updated\n")
    assert products(db) == {
        "SKU-TEE": ("Acme Tee", Decimal("19.99"), "USD"),
        "SKU-MUG": ("Acme Mug", Decimal("8.50"), "USD"),
        "SKU-CAP": ("Acme Cap", Decimal("12"), "USD"),
        "SKU-HOODIE": ("Acme Hoodie", Decimal("49.00"), "USD"),
    }
    assert count(db, WhatsAppCatalog) == 1


def test_a_reimport_updates_products_and_never_duplicates(
    wahooks: Wahooks, db: Database, tenant: str, tmp_path: Path
) -> None:
    import_catalog(wahooks, tenant, CATALOG_CSV)
    changed = write_csv(
        tmp_path,
        HEADER
        + "SKU-TEE,Acme Tee (organic),21.50,USD\n"
        + "SKU-MUG,Acme Mug,8.50,USD\n"
        + "SKU-CAP,Acme Cap,12,eur\n"
        + "SKU-HOODIE,Acme Hoodie XL,55,USD\n"
        + "SKU-SOCKS,Acme Socks,4.99,USD\n",
    )
    result = import_catalog(wahooks, tenant, changed)
    assert (result.code, result.out) == (0, "catalog 300000000000001: 1 products created, 4 updated\n")
    again = import_catalog(wahooks, tenant, changed)
    assert (again.code, again.out) == (0, "catalog 300000000000001: 0 products created, 5 updated\n")
    assert products(db) == {
        "SKU-TEE": ("Acme Tee (organic)", Decimal("21.50"), "USD"),
        "SKU-MUG": ("Acme Mug", Decimal("8.50"), "USD"),
        "SKU-CAP": ("Acme Cap", Decimal("12"), "EUR"),
        "SKU-HOODIE": ("Acme Hoodie XL", Decimal("55"), "USD"),
        "SKU-SOCKS": ("Acme Socks", Decimal("4.99"), "USD"),
    }
    assert (count(db, WhatsAppProduct), count(db, WhatsAppCatalog)) == (5, 1)


MALFORMED = [
    pytest.param(HEADER + "SKU-A,A,1,USD\nSKU-B,B,2\n", 3, id="missing field"),
    pytest.param(HEADER + "SKU-A,A,1,USD,extra\n", 2, id="extra field"),
    pytest.param(HEADER + "SKU-A,A,1,USD\nSKU-B,,2,USD\n", 3, id="empty name"),
    pytest.param(HEADER + ",A,1,USD\n", 2, id="empty retailer_id"),
    pytest.param(HEADER + "SKU-A,A,,USD\n", 2, id="empty price"),
    pytest.param(HEADER + "SKU-A,A,1,USD\nSKU-B,B,2,USD\nSKU-C,C,abc,USD\n", 4, id="price abc"),
    pytest.param(HEADER + 'SKU-A,A,"1,50",USD\n', 2, id="price 1,50 quoted"),
    pytest.param(HEADER + "SKU-A,A,1,50,USD\n", 2, id="price 1,50 unquoted"),
    pytest.param(HEADER + "SKU-A,A,-1,USD\n", 2, id="negative price"),
    pytest.param(HEADER + "SKU-A,A,NaN,USD\n", 2, id="price NaN"),
    pytest.param(HEADER + "SKU-A,A,Infinity,USD\n", 2, id="price Infinity"),
    pytest.param(HEADER + "SKU-A,A,1,USD\nSKU-B,B,2,XYZ\n", 3, id="currency XYZ"),
    pytest.param(HEADER + "SKU-A,A,1,\n", 2, id="empty currency"),
    pytest.param("sku,name,price,currency\nSKU-A,A,1,USD\n", 1, id="wrong header"),
    pytest.param("retailer_id,price,name,currency\nSKU-A,1,A,USD\n", 1, id="header in another order"),
    pytest.param("SKU-A,A,1,USD\n", 1, id="no header"),
    pytest.param("", 1, id="empty file"),
    pytest.param(
        HEADER + "SKU-TEE,T,1,USD\n\nSKU-MUG,M,2,USD\nSKU-TEE,T2,3,USD\n", 5, id="duplicate retailer_id"
    ),
]


@pytest.mark.parametrize(("text", "line"), MALFORMED)
def test_a_malformed_csv_names_its_line_and_changes_nothing(
    wahooks: Wahooks, db: Database, tenant: str, tmp_path: Path, text: str, line: int
) -> None:
    import_catalog(wahooks, tenant, CATALOG_CSV)
    before = catalog_state(db)
    result = import_catalog(wahooks, tenant, write_csv(tmp_path, text))
    assert result.code == EXIT_USAGE
    assert result.message.startswith(f"wahooks catalog: line {line}: ")
    assert no_traceback(result)
    assert catalog_state(db) == before


def test_the_line_named_is_the_line_in_the_file_after_a_multiline_field(
    wahooks: Wahooks, db: Database, tenant: str, tmp_path: Path
) -> None:
    text = HEADER + 'SKU-A,"Acme Tee\nwith a two-line name",1,USD\nSKU-B,B,abc,USD\n'
    result = import_catalog(wahooks, tenant, write_csv(tmp_path, text))
    assert result.message.startswith("wahooks catalog: line 4: ")


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(f"SKU-A,{'n' * 301},1,USD", id="name over 300 characters"),
        pytest.param(f"{'r' * 101},A,1,USD", id="retailer_id over 100 characters"),
        pytest.param("SKU-A,A,100000000000000,USD", id="price over 14 integer digits"),
    ],
)
def test_a_value_the_columns_cannot_hold_is_a_line_error(
    wahooks: Wahooks, db: Database, tenant: str, tmp_path: Path, row: str
) -> None:
    import_catalog(wahooks, tenant, CATALOG_CSV)
    before = catalog_state(db)
    try:
        result = import_catalog(wahooks, tenant, write_csv(tmp_path, HEADER + row + "\n"))
    except Exception as error:  # what an operator sees as a traceback
        raise AssertionError(f"{type(error).__name__} escaped main()") from error
    assert result.code == EXIT_USAGE
    assert result.message.startswith("wahooks catalog: line 2: ")
    assert catalog_state(db) == before


def test_a_catalog_for_an_unknown_number_points_at_tenants_add(wahooks: Wahooks, db: Database) -> None:
    result = import_catalog(wahooks, UNKNOWN_NUMBER, CATALOG_CSV)
    assert result.code == EXIT_USAGE
    assert f"no tenant has phone number id {UNKNOWN_NUMBER}" in result.err
    assert "`wahooks tenants add`" in result.err
    assert catalog_state(db) == []


def test_a_missing_csv_file_is_a_usage_error(wahooks: Wahooks, tenant: str, tmp_path: Path) -> None:
    result = import_catalog(wahooks, tenant, tmp_path / "nowhere.csv")
    assert result.code == EXIT_USAGE
    assert "cannot read" in result.err
    assert no_traceback(result)


# Configuration and schema errors


@pytest.mark.parametrize(
    "argv",
    [
        ("tenants", "list"),
        ("tenants", "add", "--name", "Acme", "--phone-number-id", "100000000000001"),
        ("catalog", "import", "--phone-number-id", "1", "--catalog-id", "2", str(CATALOG_CSV)),
        ("reprocess",),
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_command_on_an_unmigrated_database_names_the_migrate_command(
    wahooks: Wahooks, monkeypatch: pytest.MonkeyPatch, fresh_url: str, argv: tuple[str, ...]
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    result = wahooks(*argv)
    assert result.code == EXIT_USAGE
    assert "`wahooks migrate`" in result.err
    assert no_traceback(result)


def test_migrate_makes_the_database_usable(
    wahooks: Wahooks, monkeypatch: pytest.MonkeyPatch, fresh_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", fresh_url)
    assert wahooks("migrate").code == 0
    assert wahooks("migrate").code == 0
    assert wahooks("tenants", "list").code == 0


@pytest.mark.parametrize("argv", [("tenants", "list"), ("migrate",), ("reprocess",), ("failed",)])
def test_a_command_without_database_url_names_it(wahooks: Wahooks, argv: tuple[str, ...]) -> None:
    result = wahooks(*argv)
    assert result.code == EXIT_USAGE
    assert "DATABASE_URL" in result.err
    assert no_traceback(result)


def test_failed_without_redis_url_names_it(wahooks: Wahooks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    result = wahooks("failed")
    assert result.code == EXIT_USAGE
    assert "REDIS_URL" in result.err


@pytest.mark.parametrize(
    ("argv", "variable"),
    [(("tenants", "list"), "DATABASE_URL"), (("worker",), "DATABASE_URL"), (("failed",), "REDIS_URL")],
)
def test_a_server_that_does_not_answer_is_named_without_a_traceback(
    wahooks: Wahooks, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], variable: str
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql://nobody@{closed}/none" if variable == "DATABASE_URL" else "sqlite://"
    )
    monkeypatch.setenv("REDIS_URL", f"redis://{closed}/0")
    result = wahooks(*argv)
    assert result.code == EXIT_UNAVAILABLE
    assert "cannot reach" in result.message and variable in result.message
    assert no_traceback(result)


# replay


@dataclass
class LiveApp:
    url: str
    inbox: Inbox


@pytest.fixture
def live_app() -> Iterator[LiveApp]:
    """The webhook app on a real local HTTP port, queueing into an in-process Redis."""
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    config = WebConfig(
        redis_url="redis://unused", app_secrets=(SECRET,), verify_token="token", queue="replay"
    )
    server = make_server("127.0.0.1", 0, create_app(config, redis=redis), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveApp(f"http://127.0.0.1:{server.server_port}/webhook", Inbox(redis, "replay"))
    server.shutdown()
    thread.join()


def test_replay_posts_every_file_signed(wahooks: Wahooks, live_app: LiveApp) -> None:
    result = wahooks("replay", live_app.url, SEQUENCES, "--secret", SECRET)
    assert (result.code, result.out) == (0, f"200: {SEQUENCE_FILES}\n")
    bodies = live_app.inbox.connection.lrange(InboxKeys("replay").inbox, 0, -1)
    assert sorted(bodies) == sorted(p.read_bytes() for p in SEQUENCES.rglob("*.json"))


@pytest.mark.parametrize(
    ("files", "bar"), [(PAYLOADS, True), (SEQUENCES / "read_before_delivered", False)], ids=["all", "3"]
)
def test_replay_shows_a_progress_bar_from_20_files(
    wahooks: Wahooks, live_app: LiveApp, files: Path, bar: bool
) -> None:
    result = wahooks("replay", live_app.url, files, "--secret", SECRET)
    assert result.code == 0
    posted = len(payload_files([files]))
    assert (f"{posted}/{posted}" in result.err) is bar


def test_replay_signs_with_the_first_configured_secret(
    wahooks: Wahooks, live_app: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_APP_SECRET", f" {SECRET} ,older-secret")
    result = wahooks("replay", live_app.url, SEQUENCES / "read_before_delivered" / "01.json")
    assert (result.code, result.out) == (0, "200: 1\n")


def test_replay_with_the_wrong_secret_reports_403_and_fails(wahooks: Wahooks, live_app: LiveApp) -> None:
    result = wahooks("replay", live_app.url, SEQUENCES, "--secret", "not-the-secret")
    assert (result.code, result.out) == (1, f"403: {SEQUENCE_FILES}\n")
    assert live_app.inbox.depth() == 0


def test_replay_without_any_secret_names_the_variable(wahooks: Wahooks, live_app: LiveApp) -> None:
    result = wahooks("replay", live_app.url, SEQUENCES)
    assert result.code == EXIT_USAGE
    assert "WHATSAPP_APP_SECRET" in result.err
    assert live_app.inbox.depth() == 0


def test_replay_to_nothing_listening_reports_connection_errors(wahooks: Wahooks) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = wahooks("replay", f"http://127.0.0.1:{port}/webhook", SEQUENCES, "--secret", SECRET)
    assert (result.code, result.out) == (1, f"error (ConnectionError): {SEQUENCE_FILES}\n")


# failed, requeue-failed


@pytest.fixture
def failing(postgres_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """A worker pipeline on PostgreSQL and the real Redis, and the operator's environment pointing at both."""
    pipeline = make_pipeline(postgres_backend)
    monkeypatch.setenv("DATABASE_URL", url_of(postgres_backend.db))
    monkeypatch.setenv("REDIS_URL", postgres_backend.redis_url)
    monkeypatch.setenv("WAHOOKS_QUEUE", pipeline.services.queue.name)
    return pipeline


def fail_jobs(pipeline: Pipeline, n: int) -> list[str]:
    """Enqueue n jobs whose single body is not JSON, and let a worker fail them."""
    jobs = [pipeline.services.queue.enqueue(JOB_PATH, [f"not json {i}".encode()]) for i in range(n)]
    pipeline.drain()
    assert pipeline.services.queue.failed_job_registry.count == n
    return [job.id for job in jobs]


def test_failed_lists_each_failed_job_with_its_error(wahooks: Wahooks, failing: Pipeline) -> None:
    (job_id,) = fail_jobs(failing, 1)
    result = wahooks("failed")
    assert result.code == 0
    job_line, summary = result.out.splitlines()
    assert job_line.startswith(f"{job_id}  ")
    assert "  1 bodies  " in job_line
    assert job_line.endswith("failed; see its webhook_events row")
    assert "BodyFailed: body " in job_line
    assert summary == "1 failed jobs"


def test_failed_with_no_failures_says_so(wahooks: Wahooks, failing: Pipeline) -> None:
    assert wahooks("failed").out == "0 failed jobs\n"


def test_requeue_failed_puts_every_failed_job_back(wahooks: Wahooks, failing: Pipeline) -> None:
    fail_jobs(failing, 2)
    result = wahooks("requeue-failed")
    assert (result.code, result.out) == (0, "2 jobs requeued\n")
    queue = Queue(failing.services.queue.name, connection=failing.services.redis)
    assert (queue.count, queue.failed_job_registry.count) == (2, 0)
    assert wahooks("failed").out == "0 failed jobs\n"


def test_requeue_failed_with_ids_puts_back_only_those(wahooks: Wahooks, failing: Pipeline) -> None:
    first, second = fail_jobs(failing, 2)
    result = wahooks("requeue-failed", second)
    assert (result.code, result.out) == (0, "1 jobs requeued\n")
    queue = Queue(failing.services.queue.name, connection=failing.services.redis)
    assert queue.job_ids == [second]
    assert queue.failed_job_registry.get_job_ids() == [first]


# reprocess


@pytest.fixture
def delivered_to_nobody(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """unknown_number.json went through the whole pipeline before any tenant had its number."""
    monkeypatch.setenv("DATABASE_URL", url_of(pipeline.services.db))
    pipeline.replay((PAYLOADS / "unknown_number.json").read_bytes())
    assert set(tables.outcomes(pipeline.services.db).values()) == {"ignored"}
    assert tables.messages(pipeline.services.db) == {}
    return pipeline


LATE_MESSAGES = {"wamid.HBgLUNKNOWN-NUMBER-1", "wamid.HBgLUNKNOWN-NUMBER-2", "wamid.HBgLUNKNOWN-NUMBER-3"}
LATE_ANALYTICS = {
    UNKNOWN_NUMBER: {
        "2026-11-15": {
            "messages_received": 2,
            "messages_delivered": 1,
            "orders_count": 1,
            "order_revenue": Decimal("19.99"),
        }
    }
}


def test_reprocess_stores_what_an_unknown_number_sent_once_its_tenant_exists(
    wahooks: Wahooks, delivered_to_nobody: Pipeline
) -> None:
    db = delivered_to_nobody.services.db
    assert wahooks("tenants", "add", "--name", "Late", "--phone-number-id", UNKNOWN_NUMBER).code == 0
    result = wahooks("reprocess")
    assert (result.code, result.out) == (0, "processed: 1\n")
    assert set(tables.messages(db)) == LATE_MESSAGES
    assert set(tables.orders(db)) == {"wamid.HBgLUNKNOWN-NUMBER-2"}
    assert {k: v for k, v in tables.analytics(db).items() if k == UNKNOWN_NUMBER} == LATE_ANALYTICS
    assert set(tables.outcomes(db).values()) == {"processed"}


def test_reprocess_again_doubles_nothing(wahooks: Wahooks, delivered_to_nobody: Pipeline) -> None:
    db = delivered_to_nobody.services.db
    wahooks("tenants", "add", "--name", "Late", "--phone-number-id", UNKNOWN_NUMBER)
    wahooks("reprocess")
    first = tables.snapshot(db)
    again = wahooks("reprocess")
    assert (again.code, again.out) == (0, "nothing to reprocess\n")
    everything = wahooks("reprocess", "--all")
    assert (everything.code, everything.out) == (0, "processed: 1\n")
    assert tables.snapshot(db) == first
    assert tables.analytics(db)[UNKNOWN_NUMBER] == LATE_ANALYTICS[UNKNOWN_NUMBER]


def test_reprocess_creates_the_default_tenant_for_its_number(
    wahooks: Wahooks, delivered_to_nobody: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", UNKNOWN_NUMBER)
    monkeypatch.setenv("WHATSAPP_BUSINESS_NAME", "Single Co")
    result = wahooks("reprocess")
    assert (result.code, result.out) == (0, "processed: 1\n")
    assert set(tables.messages(delivered_to_nobody.services.db)) == LATE_MESSAGES
    listed = wahooks("tenants", "list").out
    assert any(
        line.split()[1:3] == ["Single", "Co"] and UNKNOWN_NUMBER in line for line in listed.splitlines()
    )


def test_reprocess_since_a_later_time_reprocesses_nothing(
    wahooks: Wahooks, delivered_to_nobody: Pipeline
) -> None:
    wahooks("tenants", "add", "--name", "Late", "--phone-number-id", UNKNOWN_NUMBER)
    result = wahooks("reprocess", "--since", "2999-01-01T00:00:00+00:00")
    assert (result.code, result.out) == (0, "nothing to reprocess\n")
    assert tables.messages(delivered_to_nobody.services.db) == {}
