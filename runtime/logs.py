"""Structured logging: one JSON object a line, with the event, tenant and job it is about."""

import json
import logging
import os
import sys
from datetime import UTC, datetime

# Attributes passed with `extra=` that belong in the JSON line.
CONTEXT_FIELDS = ("event", "tenant", "job", "phone_number_id", "wamid", "outcome", "count", "error")
_secrets: set[str] = set()


def hide(*values: str | None) -> None:
    """Register secret values; any log line containing one shows *** instead."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def _redact(text: str) -> str:
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
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
        return _redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
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
