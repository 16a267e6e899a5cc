"""Configuration read from the environment; every error names the variable to fix."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # Meta documents payloads of up to 3 MB: keep headroom.
DEFAULT_QUEUE = "whatsapp"
# Bodies a worker writes in one transaction at most: big enough to amortise a commit, small enough that a
# batch stays a fraction of a second of work.
# Measured (bench/README.md, 2026-12-06): against 100, a cap of 500 drained the mixed corpus 5-14% faster
# on the wall clock and 33-38% in steady state; a job's round trips are paid once a batch, which is what
# keeps a 1 ms network hop at 0.85x of loopback (with four push connections).
DEFAULT_BATCH_MAX_BODIES = 500
# WAIT's timeout when WAHOOKS_REDIS_WAIT_TIMEOUT_MS is not set: a replica on the same network acknowledges
# in a millisecond or two, so a WAIT that takes this long means a replica is lagging or gone.
DEFAULT_REDIS_WAIT_TIMEOUT_MS = 100
# WAIT's answer must come back before the web's Redis client gives up on it (runtime/redis_client.py's
# WEB_TIMEOUT_SECONDS, 0.5 s), with room for the round trip itself.
MAX_REDIS_WAIT_TIMEOUT_MS = 400
# The console's token opens a page that can requeue jobs: long enough that guessing it is hopeless.
MIN_CONSOLE_TOKEN_LENGTH = 16


class ConfigError(Exception):
    """A variable is missing or malformed; the message names it."""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _require(env: Mapping[str, str], name: str, why: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set: {why}")
    return value


def normalize_database_url(url: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+psycopg2:// URLs; use psycopg2 for all."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("DATABASE_URL is not a URL: expected postgresql://... or sqlite:///...")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    if scheme == "postgresql+psycopg2" or scheme.startswith("sqlite"):
        return url
    raise ConfigError(f"DATABASE_URL has an unsupported scheme {scheme!r}: use postgresql:// or sqlite:///")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _get(env, name)
    try:
        number = int(value) if value else default
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive")
    return number


def database_url(env: Mapping[str, str] = os.environ) -> str:
    return normalize_database_url(
        _require(env, "DATABASE_URL", "set it to postgresql://user@host/db (or sqlite:///file.db)")
    )


def redis_url(env: Mapping[str, str] = os.environ) -> str:
    url = _require(env, "REDIS_URL", "set it to redis://host:6379/0")
    if urlsplit(url).scheme not in ("redis", "rediss", "unix", SENTINEL_SCHEME):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss://, unix:// or {SENTINEL_SCHEME}://")
    sentinel_address(url)  # a Sentinel URL is checked whole at start
    return url


SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    """Where Redis Sentinel is asked for the current primary: REDIS_URL's Sentinel form,
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/primary-name[/db]."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int
    username: str | None
    password: str | None

    def __repr__(self) -> str:
        return f"SentinelAddress(sentinels={self.sentinels!r}, primary={self.primary!r}, db={self.db})"


def sentinel_address(url: str) -> SentinelAddress | None:
    """REDIS_URL's Sentinel form, parsed; None for any other URL. The password is the primary's."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2:
        raise ConfigError(
            f"REDIS_URL must look like {SENTINEL_SCHEME}://host:26379,host:26379/primary-name/0"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise ConfigError("REDIS_URL's database number (after the primary's name) must be a whole number")
    return SentinelAddress(
        sentinels=tuple(_host_and_port(host) for host in hosts.split(",")),
        primary=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_and_port(address: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`; the port defaults to Sentinel's."""
    host, colon, port = address.rpartition(":")
    if not colon or host.endswith(":") or (address.startswith("[") and not host.endswith("]")):
        host, port = address, ""  # no port, or a bare IPv6 address
    if not port:
        port = str(DEFAULT_SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"REDIS_URL names a Sentinel as {address!r}: use host:port")
    return host, int(port)


def queue_name(env: Mapping[str, str] = os.environ) -> str:
    return _get(env, "WAHOOKS_QUEUE") or DEFAULT_QUEUE


def metrics_directory(env: Mapping[str, str] = os.environ) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, where the web's processes keep their metrics (webhook/serve.py sets one)."""
    directory = _get(env, "PROMETHEUS_MULTIPROC_DIR")
    if directory is not None and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
        raise ConfigError("PROMETHEUS_MULTIPROC_DIR must be an existing directory the web can write to")
    return directory


def metrics_port(env: Mapping[str, str] = os.environ) -> int | None:
    """WAHOOKS_METRICS_PORT, the port of a worker process's own metrics exporter; None: no exporter."""
    if _get(env, "WAHOOKS_METRICS_PORT") is None:
        return None
    port = _positive_int(env, "WAHOOKS_METRICS_PORT", 0)
    if port > 65535:
        raise ConfigError("WAHOOKS_METRICS_PORT must be a port number (1 to 65535)")
    return port


@dataclass(frozen=True)
class ReplicaWait:
    """Redis's WAIT after each push: a body is answered 200 only once `replicas` replicas hold it."""

    replicas: int
    timeout_ms: int


def replica_wait(env: Mapping[str, str] = os.environ) -> ReplicaWait | None:
    """WAHOOKS_REDIS_WAIT_REPLICAS (and its WAHOOKS_REDIS_WAIT_TIMEOUT_MS); None: no WAIT (the default)."""
    if _get(env, "WAHOOKS_REDIS_WAIT_REPLICAS") is None:
        if _get(env, "WAHOOKS_REDIS_WAIT_TIMEOUT_MS") is not None:
            raise ConfigError("WAHOOKS_REDIS_WAIT_TIMEOUT_MS is set, but WAHOOKS_REDIS_WAIT_REPLICAS is not")
        return None
    replicas = _positive_int(env, "WAHOOKS_REDIS_WAIT_REPLICAS", 0)
    timeout_ms = _positive_int(env, "WAHOOKS_REDIS_WAIT_TIMEOUT_MS", DEFAULT_REDIS_WAIT_TIMEOUT_MS)
    if timeout_ms > MAX_REDIS_WAIT_TIMEOUT_MS:
        raise ConfigError(
            f"WAHOOKS_REDIS_WAIT_TIMEOUT_MS must be at most {MAX_REDIS_WAIT_TIMEOUT_MS}"
            " (the web's Redis client waits 500 ms for an answer)"
        )
    return ReplicaWait(replicas, timeout_ms)


@dataclass(frozen=True)
class WebConfig:
    redis_url: str
    app_secrets: tuple[str, ...]
    verify_token: str
    queue: str = DEFAULT_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The bearer token /metrics asks for; None: no /metrics (the webhook's port is public).
    metrics_token: str | None = None
    metrics_directory: str | None = None
    # Redis connections each web process pushes bodies on at once (webhook/group_push.py's lanes).
    push_connections: int = 1
    replica_wait: ReplicaWait | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WebConfig":
        secrets = tuple(
            s.strip()
            for s in _require(env, "WHATSAPP_APP_SECRET", "the app secret signs every webhook").split(",")
            if s.strip()
        )
        if not secrets:
            raise ConfigError("WHATSAPP_APP_SECRET holds no secret (only commas or spaces)")
        max_body = _positive_int(env, "WEBHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
        return cls(
            redis_url=redis_url(env),
            app_secrets=secrets,
            verify_token=_require(env, "WHATSAPP_VERIFY_TOKEN", "Meta's subscription handshake needs it"),
            queue=queue_name(env),
            max_body_bytes=max_body,
            metrics_token=_get(env, "METRICS_TOKEN"),
            metrics_directory=metrics_directory(env),
            push_connections=_positive_int(env, "WAHOOKS_PUSH_CONNECTIONS", 1),
            replica_wait=replica_wait(env),
        )

    def __repr__(self) -> str:  # secrets must never reach a log line
        return f"WebConfig(redis_url=<set>, queue={self.queue!r}, max_body_bytes={self.max_body_bytes})"


@dataclass(frozen=True)
class WorkerConfig:
    database_url: str
    redis_url: str
    queue: str = DEFAULT_QUEUE
    default_phone_number_id: str | None = None
    default_business_name: str = "default"
    batch_max_bodies: int = DEFAULT_BATCH_MAX_BODIES

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WorkerConfig":
        return cls(
            database_url=database_url(env),
            redis_url=redis_url(env),
            queue=queue_name(env),
            default_phone_number_id=_get(env, "WHATSAPP_PHONE_NUMBER_ID"),
            default_business_name=_get(env, "WHATSAPP_BUSINESS_NAME") or "default",
            batch_max_bodies=_positive_int(env, "WAHOOKS_BATCH_MAX_BODIES", DEFAULT_BATCH_MAX_BODIES),
        )

    def __repr__(self) -> str:
        return f"WorkerConfig(database_url=<set>, redis_url=<set>, queue={self.queue!r})"


@dataclass(frozen=True)
class ConsoleConfig:
    """The operator's console (`wahooks console`): off unless CONSOLE_TOKEN is set."""

    database_url: str
    redis_url: str
    token: str
    queue: str = DEFAULT_QUEUE

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "ConsoleConfig":
        token = _require(
            env,
            "CONSOLE_TOKEN",
            "the console is off until it is set; make one with"
            " `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`",
        )
        if len(token) < MIN_CONSOLE_TOKEN_LENGTH:
            raise ConfigError(f"CONSOLE_TOKEN must be at least {MIN_CONSOLE_TOKEN_LENGTH} characters long")
        return cls(
            database_url=database_url(env), redis_url=redis_url(env), token=token, queue=queue_name(env)
        )

    def __repr__(self) -> str:
        return f"ConsoleConfig(database_url=<set>, redis_url=<set>, token=<set>, queue={self.queue!r})"
