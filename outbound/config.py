"""The outbound side's configuration, from the environment; every error names the variable to fix."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from outbound.tokens import Tokens
from runtime.config import ConfigError, database_url, queue_name, redis_url

# Here, not beside the client (outbound/graph.py): the processing worker reads this module for the
# outbound queue's name, and should not load an HTTP client at every start.
DEFAULT_GRAPH_URL = "https://graph.facebook.com/v26.0"

# WhatsApp accepts documents of up to 100 MB: a larger answer is not a file Meta documents.
DEFAULT_MEDIA_MAX_BYTES = 100 * 1024 * 1024


def outbound_queue_name(env: Mapping[str, str] = os.environ) -> str:
    """The outbound queue sits beside the processing queue: `<WAHOOKS_QUEUE>-outbound`."""
    return f"{queue_name(env)}-outbound"


def graph_url(env: Mapping[str, str] = os.environ) -> str:
    """WHATSAPP_GRAPH_URL: Meta's Graph API with its version; tests and staging point it elsewhere."""
    url = env.get("WHATSAPP_GRAPH_URL", "").strip() or DEFAULT_GRAPH_URL
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"WHATSAPP_GRAPH_URL must be an http(s) URL such as {DEFAULT_GRAPH_URL}")
    return url.rstrip("/")


def media_dir(env: Mapping[str, str] = os.environ) -> Path | None:
    value = env.get("WAHOOKS_MEDIA_DIR", "").strip()
    return Path(value) if value else None


def media_max_bytes(env: Mapping[str, str] = os.environ) -> int:
    value = env.get("WAHOOKS_MEDIA_MAX_BYTES", "").strip()
    try:
        number = int(value) if value else DEFAULT_MEDIA_MAX_BYTES
    except ValueError:
        raise ConfigError("WAHOOKS_MEDIA_MAX_BYTES must be a whole number of bytes") from None
    if number <= 0:
        raise ConfigError("WAHOOKS_MEDIA_MAX_BYTES must be positive")
    return number


@dataclass(frozen=True)
class GraphConfig:
    """What a Graph API call needs: where, and with which tokens (the CLI's commands use this alone)."""

    graph_url: str = DEFAULT_GRAPH_URL
    tokens: Tokens = field(default_factory=Tokens)
    media_dir: Path | None = None
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "GraphConfig":
        return cls(graph_url(env), Tokens.from_env(env), media_dir(env), media_max_bytes(env))

    def require_media_dir(self) -> Path:
        if self.media_dir is None:
            raise ConfigError("WAHOOKS_MEDIA_DIR is not set: say which directory media files are saved in")
        return self.media_dir


@dataclass(frozen=True)
class OutboundConfig:
    """The outbound worker's: the database, Redis, its queue, and the Graph API."""

    database_url: str
    redis_url: str
    queue: str
    graph: GraphConfig = field(default_factory=GraphConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "OutboundConfig":
        return cls(database_url(env), redis_url(env), outbound_queue_name(env), GraphConfig.from_env(env))

    def __repr__(self) -> str:
        return f"OutboundConfig(database_url=<set>, redis_url=<set>, queue={self.queue!r})"
