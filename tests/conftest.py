"""Fixtures: a migrated database and a Redis per backend, and the whole pipeline wired to them."""

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest
import redis
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from sqlalchemy import text

from cli import catalog, tenants
from cli.migrate import upgrade
from models import Base
from models.db import Database
from runtime.config import WebConfig, WorkerConfig
from tests import services as real
from tests.fake_graph import FakeGraph
from webhook.app import create_app
from webhook.signature import sign
from workers import runner, services

HERE = Path(__file__).parent
PAYLOADS = HERE / "payloads"
EXPECTED = HERE / "expected"
CATALOG_CSV = HERE / "fixtures" / "catalog_a.csv"
SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
TENANT_A = tenants.NewTenant("Acme", "100000000000001", "200000000000001", "15550000001")
TENANT_B = tenants.NewTenant("Bravo", "100000000000002", "200000000000002", "15550000002")
CATALOG_A = "300000000000001"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = real.create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        real.drop_postgres_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty (un-migrated) database of each kind, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = real.create_postgres_database()
    try:
        yield url
    finally:
        real.drop_postgres_database(url)


@pytest.fixture(scope="session")
def postgres_db(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'wahooks.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = real.claim_redis_db()
    yield url
    redis.Redis.from_url(url).flushdb()


def empty_tables(db: Database) -> None:
    with db.session() as session:
        if db.dialect == "postgresql":
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())


def empty_redis(client: redis.Redis) -> None:
    client.flushdb()
    client.set(real.CLAIM_KEY, "claimed")


@dataclass
class Backend:
    name: str
    db: Database
    redis: redis.Redis
    redis_url: str


@contextmanager
def fresh_postgres_backend(db: Database, redis_url: str) -> Iterator[Backend]:
    """The run's PostgreSQL database and Redis, emptied before and after."""
    client = redis.Redis.from_url(redis_url)
    empty_tables(db)
    empty_redis(client)
    yield Backend("postgres", db, client, redis_url)
    empty_redis(client)


@pytest.fixture
def postgres_backend(postgres_db: Database, redis_url: str) -> Iterator[Backend]:
    with fresh_postgres_backend(postgres_db, redis_url) as backend:
        yield backend


@pytest.fixture
def sqlite_backend(sqlite_db: Database) -> Backend:
    empty_tables(sqlite_db)
    return Backend("sqlite", sqlite_db, fakeredis.FakeRedis(server=fakeredis.FakeServer()), "redis://fake")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that takes it runs embedded (SQLite + fakeredis) and on real PostgreSQL + Redis."""
    return request.getfixturevalue(f"{request.param}_backend")


@dataclass
class Pipeline:
    """HTTP -> Redis inbox -> pump -> RQ worker -> database, as in production."""

    client: FlaskClient
    services: services.Services

    def post(self, body: bytes, secret: str = SECRET) -> int:
        headers = {"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}
        return self.client.post("/webhook", data=body, headers=headers).status_code

    def deliver(self, *bodies: bytes) -> None:
        for body in bodies:
            assert self.post(body) == 200

    def drain(self) -> None:
        runner.run(self.services, burst=True)

    def replay(self, *bodies: bytes) -> None:
        self.deliver(*bodies)
        self.drain()


def make_pipeline(
    backend: Backend, default_phone_number_id: str | None = None, queue: str | None = None
) -> Pipeline:
    queue = queue or f"test-{uuid.uuid4().hex[:8]}"
    web = WebConfig(
        redis_url=backend.redis_url, app_secrets=(SECRET,), verify_token=VERIFY_TOKEN, queue=queue
    )
    work = WorkerConfig(
        database_url=backend.db.engine.url.render_as_string(hide_password=False),
        redis_url=backend.redis_url,
        queue=queue,
        default_phone_number_id=default_phone_number_id,
    )
    svc = services.Services.build(work, redis=backend.redis, db=backend.db)
    services.install(svc)
    return Pipeline(create_app(web, redis=backend.redis).test_client(), svc)


def seed(db: Database) -> None:
    """Tenants A and B, and tenant A's catalog, as the expectation files assume."""
    tenants.add(db, TENANT_A)
    tenants.add(db, TENANT_B)
    catalog.import_catalog(db, TENANT_A.phone_number_id, CATALOG_A, CATALOG_CSV)


@pytest.fixture
def seeded(backend: Backend) -> Backend:
    seed(backend.db)
    return backend


@pytest.fixture
def pipeline(seeded: Backend) -> Pipeline:
    return make_pipeline(seeded)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Commands point the root logger at the current stderr (cli/main.py); put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def load_expected(relative: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((EXPECTED / relative).read_text()))


@pytest.fixture(scope="session")
def graph_server() -> Iterator[HTTPServer]:
    """The fake Graph API's HTTP server, one for the run: stopping one costs half a second."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def graph(graph_server: HTTPServer) -> FakeGraph:
    """A fake Graph API (tests/fake_graph.py) with nothing recorded or set up yet."""
    graph_server.clear()
    return FakeGraph(graph_server)
