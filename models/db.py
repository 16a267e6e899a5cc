"""The one place that builds the database engine and sessions, and checks the schema is current."""

import importlib.util
import json
import math
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import orjson
from sqlalchemy import Connection, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from runtime.config import normalize_database_url

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")
MIGRATIONS = "wahooks_data.migrations"  # the repository's alembic/ folder, as pyproject.toml ships it
MIGRATE_COMMAND = "wahooks migrate"
# The newest migration (alembic/versions), which the database must be at. Written here so that a process
# checks the schema at start without importing alembic and loading every migration (a tenth of a second,
# paid by every worker start); tests/test_migrations.py keeps it equal to alembic's head.
SCHEMA_HEAD = "0005"
VERSION_TABLE = "alembic_version"


class SchemaOutOfDate(Exception):
    """The database is behind (or ahead of) the migrations this code ships."""


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


EXACT_INTEGER_DIGITS = 40


def json_default(value: object) -> object:
    """Raw Meta JSON is parsed with Decimal numbers; store them back as JSON numbers."""
    if isinstance(value, Decimal):
        if value.adjusted() < EXACT_INTEGER_DIGITS and value == value.to_integral_value():
            return int(value)
        number = float(value)
        # A number no float holds (1e400) is kept as its text: JSON has no Infinity, and int() of
        # 1e999999999 would build a billion digits. The body's own bytes keep the original.
        return number if math.isfinite(number) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_json_dumps = partial(json.dumps, default=json_default, ensure_ascii=False)


def _dumps(value: object) -> str:
    """JSON text for a JSON column: orjson's, or json's for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value, default=json_default).decode()
    except orjson.JSONEncodeError:
        return _json_dumps(value)


def make_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, json_serializer=_dumps, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        json_serializer=_dumps,
        hide_parameters=True,  # customer data stays out of error messages and logs
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5, "application_name": "wahooks"},
        client_encoding="utf8",  # whatever the database's own encoding: models/bulk.py renders UTF-8
    )


def _forget_connections(engine: Engine | None) -> None:
    if engine is not None:
        engine.dispose(close=False)


class Database:
    """An engine and its session factory: build one per process."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        # A forked child must never reuse the parent's pooled connections. A weak reference, so the
        # hook does not keep a disposed Database alive.
        engine = weakref.ref(self.engine)
        os.register_at_fork(after_in_child=lambda: _forget_connections(engine()))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def check_schema(self) -> None:
        """Raise SchemaOutOfDate, naming the command that fixes it, unless at the latest migration."""
        with self.engine.connect() as connection:
            current = _revisions(connection)
        if current != [SCHEMA_HEAD]:
            where = ", ".join(current) or "an empty database"
            raise SchemaOutOfDate(
                f"the database is at migration {where}, this code needs {SCHEMA_HEAD}:"
                f" run `{MIGRATE_COMMAND}` (or `alembic upgrade head`) with the same DATABASE_URL"
            )

    def dispose(self) -> None:
        self.engine.dispose()


def _revisions(connection: Connection) -> list[str]:
    """The migrations alembic recorded as applied: none on an empty database, one once migrated."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return []
    return list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def data_folder(package: str) -> Path:
    """The folder of one of the distribution's data-only packages (wahooks_data.*, see pyproject.toml).

    Found by import, so a wheel and an editable install of a checkout each give their own copy. Not through
    importlib.resources: these are namespace packages, and an editable install lists a placeholder that is
    no folder next to the real one, which Python 3.11's files() rejects.
    """
    spec = importlib.util.find_spec(package)
    folders = [Path(p) for p in (spec.submodule_search_locations or []) if Path(p).is_dir()] if spec else []
    if not folders:
        raise FileNotFoundError(f"{package} is missing: reinstall wahooks (pip install wahooks)")
    return folders[0]


def alembic_config(url: str | None = None) -> "Config":
    """Alembic settings for the migrations this code ships (alembic.ini serves `alembic` in a checkout)."""
    from alembic.config import Config  # only the commands that migrate load alembic

    config = Config()
    config.set_main_option("script_location", str(data_folder(MIGRATIONS)))
    if url:
        config.attributes["database_url"] = normalize_database_url(url)
    return config


def as_utc(value: T) -> T:
    """A time in UTC, whatever the session's time zone; SQLite hands timestamps back naive, written in UTC.
    Anything that is not a time is returned as it is (for rows read whole)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def upsert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that accepts .on_conflict_do_nothing() / .on_conflict_do_update() on both dialects."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
