"""Structured logging: one JSON object a line, with the event, tenant and job it is about.

No line shows a secret: values registered with hide(), and the secrets in the environment of the process
that logs, are masked wherever they appear, as written or as JSON or a URL would spell them.
"""

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus, unquote, urlsplit

# Attributes passed with `extra=` that belong in the JSON line.
CONTEXT_FIELDS = ("event", "tenant", "job", "phone_number_id", "wamid", "outcome", "count", "error")
# Variables that hold secrets (the app secret may list several, comma-separated, during a rotation).
SECRET_VARIABLES = (
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_ACCESS_TOKEN",
    "METRICS_TOKEN",
    "CONSOLE_TOKEN",
    "WAHOOKS_TOKEN_KEYS",
)
# Variables that hold URLs, whose password is a secret.
URL_VARIABLES = ("DATABASE_URL", "REDIS_URL")
MIN_SECRET_LENGTH = 4  # masking shorter values would garble ordinary words
_secrets: set[str] = set()


def hide(*values: str | None) -> None:
    """Register secret values; a log line that contains one shows *** in its place."""
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            _secrets.update(_spellings(value))


def _spellings(value: str) -> set[str]:
    """The value as written, inside a JSON string (non-ASCII kept or escaped), and percent-encoded as in
    a URL or a form."""
    in_json = {json.dumps(value, ensure_ascii=ascii)[1:-1] for ascii in (False, True)}
    return {value, *in_json, quote(value, safe=""), quote_plus(value, safe="")}


def hide_environment(env: Mapping[str, str] = os.environ) -> None:
    """Register the secrets this process was given: app secrets, tokens, and the passwords in its URLs."""
    for name in SECRET_VARIABLES:
        value = env.get(name, "")
        hide(value.strip(), *(part.strip() for part in value.split(",")))
    for name in URL_VARIABLES:
        password = _password(env.get(name, ""))
        hide(password, unquote(password or ""))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:  # a malformed URL: configuration reports it, logging must not fail on it
        return None


def error_summary(error: BaseException) -> str:
    """Name an error without its text, which may quote what caused it (a refused row, a field's value).

    A database error wrapped by SQLAlchemy also names the driver's error and its SQLSTATE.
    """
    summary = type(error).__name__
    cause = getattr(error, "orig", None)
    if cause is None:
        return summary
    code = getattr(cause, "pgcode", None)
    return f"{summary} ({type(cause).__name__}{f', SQLSTATE {code}' if code else ''})"


def _redact(text: str) -> str:
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class _Masking(logging.Formatter):
    """Whoever builds it (configure() here, granian's dictConfig in the web server's processes), every
    formatter masks the secrets of the environment of the process it logs for."""

    def __init__(self) -> None:
        super().__init__()
        hide_environment()


class JsonFormatter(_Masking):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Strings are masked before JSON escapes them (a message may quote JSON that holds a secret);
        # the finished line once more, for a secret inside a value that is not a string.
        masked = {key: _redact(value) if isinstance(value, str) else value for key, value in line.items()}
        return _redact(json.dumps(masked, default=str, ensure_ascii=False))


class TextFormatter(_Masking):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if hasattr(record, f))
        text = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {context}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return _redact(text)


def configure(level: str | None = None, fmt: str | None = None) -> None:
    """Send every logger to stderr; LOG_FORMAT=json (default) or text, LOG_LEVEL=INFO."""
    fmt = fmt or os.environ.get("LOG_FORMAT", "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    # Alembic announces its dialect and plugins on every schema check; only `wahooks migrate` has news.
    for name in ("alembic.runtime.migration", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
