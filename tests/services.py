"""Reaching the real PostgreSQL and Redis a test run uses; skip (or, in CI, fail) when they are absent."""

import os
import uuid
from typing import NoReturn

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REQUIRED = os.environ.get("WAHOOKS_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "WAHOOKS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WAHOOKS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM_KEY = "wahooks:test-run-claim"


def skip_or_fail(message: str) -> NoReturn:
    """Skip a test whose server or program is missing; under WAHOOKS_REQUIRE_SERVICES=1 (CI), fail it."""
    if REQUIRED:
        pytest.fail(f"{message} [WAHOOKS_REQUIRE_SERVICES=1 makes this a failure]", pytrace=False)
    pytest.skip(message)


def unavailable(what: str, error: Exception) -> None:
    skip_or_fail(
        f"{what} is not reachable ({type(error).__name__}: {error}); start it or set its WAHOOKS_TEST_* URL"
    )


def create_postgres_database() -> str:
    """A fresh, empty database for this test run; returns its URL."""
    name = f"wahooks_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        unavailable("PostgreSQL", error)
    finally:
        admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def claim_redis_db() -> str:
    """A Redis database number nobody is using (empty), for this run only; keep CLAIM_KEY in it."""
    try:
        probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        probe.ping()
    except redis.RedisError as error:
        unavailable("Redis", error)
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.set(CLAIM_KEY, uuid.uuid4().hex, nx=True):
            if client.dbsize() == 1:
                return f"{REDIS_URL}/{number}"
            client.delete(CLAIM_KEY)
    pytest.fail("no empty Redis database number (1-15) is free for the test run")
    raise AssertionError
