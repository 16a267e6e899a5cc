"""Configuration from the environment (every error names its variable) and the JSON log lines."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from runtime import logs
from runtime.config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_QUEUE,
    ConfigError,
    WebConfig,
    WorkerConfig,
    normalize_database_url,
)

WEB_ENV = {
    "WHATSAPP_APP_SECRET": "app-secret-value",
    "WHATSAPP_VERIFY_TOKEN": "verify-token-value",
    "REDIS_URL": "redis://:redis-password-value@127.0.0.1:6379/0",
}
WORKER_ENV = {
    "DATABASE_URL": "postgresql://wahooks:db-password-value@db.internal:5432/wahooks",
    "REDIS_URL": "redis://:redis-password-value@127.0.0.1:6379/0",
}
CONFIGS = {WebConfig: WEB_ENV, WorkerConfig: WORKER_ENV}


def env(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    """A copy of base with variables set, or removed when given None."""
    merged = base | changes
    return {k: v for k, v in merged.items() if v is not None}


# Required variables


def test_a_complete_web_environment_gives_defaults_for_the_rest() -> None:
    config = WebConfig.from_env(WEB_ENV)
    assert config == WebConfig(
        redis_url=WEB_ENV["REDIS_URL"],
        app_secrets=("app-secret-value",),
        verify_token="verify-token-value",
        queue=DEFAULT_QUEUE,
        max_body_bytes=DEFAULT_MAX_BODY_BYTES,
    )


def test_a_complete_worker_environment_gives_defaults_for_the_rest() -> None:
    config = WorkerConfig.from_env(WORKER_ENV)
    assert config == WorkerConfig(
        database_url="postgresql+psycopg2://wahooks:db-password-value@db.internal:5432/wahooks",
        redis_url=WORKER_ENV["REDIS_URL"],
        queue=DEFAULT_QUEUE,
        default_phone_number_id=None,
        default_business_name="default",
    )


def test_optional_variables_are_read() -> None:
    web = WebConfig.from_env(env(WEB_ENV, WAHOOKS_QUEUE="priority", WEBHOOK_MAX_BODY_BYTES="1024"))
    worker = WorkerConfig.from_env(
        env(
            WORKER_ENV,
            WAHOOKS_QUEUE="priority",
            WHATSAPP_PHONE_NUMBER_ID="100000000000001",
            WHATSAPP_BUSINESS_NAME="Acme",
        )
    )
    assert (web.queue, web.max_body_bytes) == ("priority", 1024)
    assert (worker.queue, worker.default_phone_number_id, worker.default_business_name) == (
        "priority",
        "100000000000001",
        "Acme",
    )


REQUIRED = [
    pytest.param(cls, name, id=f"{cls.__name__}-{name}")
    for cls, base in CONFIGS.items()
    for name in sorted(base)
]


@pytest.mark.parametrize(("cls", "name"), REQUIRED)
@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_each_missing_variable_is_named(
    cls: type[WebConfig | WorkerConfig], name: str, value: str | None
) -> None:
    with pytest.raises(ConfigError, match=name):
        cls.from_env(env(CONFIGS[cls], **{name: value}))


# Secrets, limits and URLs


@pytest.mark.parametrize(
    ("value", "secrets"),
    [
        ("one", ("one",)),
        ("new,old", ("new", "old")),
        (" new , old ", ("new", "old")),
        ("new,,old,", ("new", "old")),
        (",new, ,", ("new",)),
    ],
)
def test_app_secrets_are_comma_separated_and_blanks_dropped(value: str, secrets: tuple[str, ...]) -> None:
    assert WebConfig.from_env(env(WEB_ENV, WHATSAPP_APP_SECRET=value)).app_secrets == secrets


@pytest.mark.parametrize("value", [",", " , , "])
def test_app_secret_of_only_commas_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match="WHATSAPP_APP_SECRET"):
        WebConfig.from_env(env(WEB_ENV, WHATSAPP_APP_SECRET=value))


@pytest.mark.parametrize("value", ["abc", "4MB", "1.5", "0", "-1", "1e6"])
@pytest.mark.parametrize(
    ("config", "name"),
    [
        (WebConfig, "WEBHOOK_MAX_BODY_BYTES"),
        (WebConfig, "WAHOOKS_PUSH_CONNECTIONS"),
        (WorkerConfig, "WAHOOKS_BATCH_MAX_BODIES"),
    ],
)
def test_a_bad_positive_number_is_named(config: type, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        config.from_env(env(CONFIGS[config], **{name: value}))


def test_the_push_connections_are_read_from_the_environment() -> None:
    assert WebConfig.from_env(env(WEB_ENV)).push_connections == 1
    assert WebConfig.from_env(env(WEB_ENV, WAHOOKS_PUSH_CONNECTIONS="4")).push_connections == 4


def test_the_batch_size_is_read_from_the_environment() -> None:
    assert WorkerConfig.from_env(env(WORKER_ENV)).batch_max_bodies == 500
    assert WorkerConfig.from_env(env(WORKER_ENV, WAHOOKS_BATCH_MAX_BODIES="250")).batch_max_bodies == 250


@pytest.mark.parametrize("value", ["127.0.0.1:6379", "http://127.0.0.1:6379", "postgres://x"])
def test_a_redis_url_of_another_scheme_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        WebConfig.from_env(env(WEB_ENV, REDIS_URL=value))


@pytest.mark.parametrize(
    "value",
    [
        "redis://h:6379/1",
        "rediss://h:6380/0",
        "unix:///run/redis.sock",
        "redis+sentinel://s1,s2:26380/main/1",
    ],
)
def test_redis_urls_of_the_supported_schemes_are_kept(value: str) -> None:
    assert WorkerConfig.from_env(env(WORKER_ENV, REDIS_URL=value)).redis_url == value


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgresql+psycopg2://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+psycopg2://u@h/db?sslmode=require"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite:////var/lib/wahooks.db", "sqlite:////var/lib/wahooks.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_database_urls_are_normalized_to_psycopg2(url: str, normalized: str) -> None:
    assert normalize_database_url(url) == normalized
    assert WorkerConfig.from_env(env(WORKER_ENV, DATABASE_URL=url)).database_url == normalized


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://u@h/db", "'mysql'"),
        ("postgresql+asyncpg://u@h/db", "'postgresql+asyncpg'"),
        ("http://h/db", "'http'"),
        ("just-a-name", "DATABASE_URL"),
    ],
)
def test_an_unsupported_database_url_is_named(url: str, named: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL") as error:
        WorkerConfig.from_env(env(WORKER_ENV, DATABASE_URL=url))
    assert named in str(error.value)


SECRET_VALUES = ("app-secret-value", "verify-token-value", "redis-password-value", "db-password-value")


@pytest.mark.parametrize(
    "environment",
    [
        env(WEB_ENV, WHATSAPP_APP_SECRET="app-secret-value,old-app-secret-value"),
        env(WORKER_ENV, WHATSAPP_PHONE_NUMBER_ID="100000000000001"),
    ],
    ids=["web", "worker"],
)
def test_a_config_shown_anywhere_never_shows_a_secret(environment: dict[str, str]) -> None:
    config = (WorkerConfig if "DATABASE_URL" in environment else WebConfig).from_env(environment)
    for shown in (repr(config), str(config), f"{config}", f"{config!r}", repr([config])):
        for secret in (*SECRET_VALUES, "old-app-secret-value"):
            assert secret not in shown


# Logging


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """An empty set of hidden values for this test, whatever other tests registered."""
    secrets: set[str] = set()
    monkeypatch.setattr(logs, "_secrets", secrets)
    return secrets


@pytest.fixture
def json_log(registry: set[str]) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.test_config.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_on_one_line(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.info("first")
    logger.warning("second\nspans two lines")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("third")
    records = lines(stream)
    assert [r["msg"] for r in records] == ["first", "second\nspans two lines", "third"]
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    assert all(r["logger"] == logger.name for r in records)
    assert "ValueError: boom" in str(records[2]["exc"])


def test_context_fields_are_fields_of_the_line(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.info("body processed", extra={"event": "0f3a9c", "tenant": 7, "job": "job-1", "count": 3})
    (record,) = lines(stream)
    assert {k: record[k] for k in ("event", "tenant", "job", "count")} == {
        "event": "0f3a9c",
        "tenant": 7,
        "job": "job-1",
        "count": 3,
    }
    assert "outcome" not in record


def test_non_ascii_stays_readable(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.info("K\u00e4se \U0001f600")
    assert "K\u00e4se \U0001f600" in stream.getvalue()
    assert lines(stream)[0]["msg"] == "K\u00e4se \U0001f600"


def test_a_hidden_secret_never_appears_in_a_message_or_traceback(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    logs.hide("app-secret-value", None, "")
    logger.info("signing with %s", "app-secret-value")
    try:
        raise RuntimeError("auth failed for app-secret-value")
    except RuntimeError:
        logger.exception("failed")
    assert "app-secret-value" not in stream.getvalue()
    assert lines(stream)[0]["msg"] == "signing with ***"


def test_a_hidden_secret_never_appears_in_a_context_field(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    logs.hide("app-secret-value")
    logger.error("redis refused", extra={"error": "AuthenticationError: app-secret-value"})
    assert "app-secret-value" not in stream.getvalue()


def test_the_text_format_hides_secrets_too(registry: set[str]) -> None:
    logs.hide("app-secret-value")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "using %s", ("app-secret-value",), None)
    record.error = "app-secret-value"
    assert "app-secret-value" not in logs.TextFormatter().format(record)


def test_values_too_short_to_be_secrets_are_not_hidden(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logs.hide("abc")
    logger.info("abc def")
    assert lines(stream)[0]["msg"] == "abc def"


def test_configure_sends_json_lines_to_stderr(capsys: pytest.CaptureFixture[str], registry: set[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure(level="info", fmt="json")
        logging.getLogger("tests.configure").info("hello", extra={"tenant": 1})
        logging.getLogger("tests.configure").debug("not shown")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (line,) = capsys.readouterr().err.splitlines()
    assert {k: v for k, v in json.loads(line).items() if k != "ts"} == {
        "level": "info",
        "logger": "tests.configure",
        "msg": "hello",
        "tenant": 1,
    }
