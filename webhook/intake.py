"""Meta's signed POST, answered in plain WSGI in front of the Flask app: read, verify, check, push, answer.

This is the one request Meta sends thousands of times a second. Flask's request and response objects,
its context and its URL matching cost about as much CPU as everything this request does itself
(bench/README.md), so the POST is answered here and every other request goes on to Flask.
"""

import json
import logging
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_content_length, get_input_stream

from runtime import metrics
from runtime.config import WebConfig
from runtime.inbox import body_digest
from webhook.group_push import GroupPush
from webhook.signature import Verdict, verify

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
PATH = "/webhook"
CHUNK_BYTES = 64 * 1024
# Meta's bodies nest a dozen levels at most (entry > changes > value > messages > contacts > phones);
# 64 leaves room for fields Meta may add and keeps whoever reads the body recursively (the workers'
# parser, json itself) far below Python's recursion limit of 1,000.
MAX_NESTING = 64
_CONTAINERS = (dict, list)


def _json_answer(document: dict[str, Any]) -> bytes:
    """The bytes Flask's jsonify writes for this document (compact, sorted, ASCII, a final newline)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode() + b"\n"


# The two answers to an accepted POST, encoded once: the hot path.
_QUEUED = {flag: _json_answer({"queued": flag}) for flag in (True, False)}


class Intake:
    """The WSGI app the server runs: POST /webhook answered here, everything else by `fallback` (Flask)."""

    def __init__(self, config: WebConfig, inbox: GroupPush, fallback: "WSGIApplication") -> None:
        self.config = config
        self.inbox = inbox
        self.fallback = fallback

    def __call__(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.fallback(environ, start_response)
        try:
            status, answer = self.receive(environ)
        except HTTPException as error:  # Werkzeug's stream: the client left before sending its whole body
            status, answer = _error(error.name.lower(), error.code or 400)
        except Exception as error:
            log.error("unexpected error answering POST %s", PATH, exc_info=error)
            status, answer = _error("internal error", 500)
        start_response(
            f"{status} {HTTP_STATUS_CODES[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))],
        )
        return [answer]

    def receive(self, environ: "WSGIEnvironment") -> tuple[int, bytes]:
        """The status and JSON answer to one POST; the body is in Redis before a 200."""
        body = _body(environ, self.config.max_body_bytes)
        if body is None:
            metrics.TOO_LARGE.inc()
            return _error("body too large", 413)
        verdict = verify(environ.get("HTTP_X_HUB_SIGNATURE_256"), body, self.config.app_secrets)
        if verdict is not Verdict.VALID:
            log.warning(
                "webhook rejected: signature %s", verdict.value, extra={"event": body_digest(body)[:16]}
            )
            metrics.BAD_SIGNATURE.inc()
            return _error(f"signature {verdict.value}", 401 if verdict is Verdict.MISSING else 403)
        refusal = _refusal(body)
        if refusal is not None:
            metrics.BAD_BODY.inc()
            return _error(refusal, 400)
        try:
            queued = self.inbox.push(body)
        except (RedisError, TimeoutError) as error:
            log.error("redis unavailable, answering 503: %s", type(error).__name__)
            metrics.REDIS_UNAVAILABLE.inc()
            return _error("temporarily unavailable", 503)
        (metrics.ACCEPTED if queued else metrics.DUPLICATE).inc()
        return 200, _QUEUED[queued]


def _error(message: str, status: int) -> tuple[int, bytes]:
    return status, _json_answer({"error": message})


def _body(environ: "WSGIEnvironment", limit: int) -> bytes | None:
    """The request's body, or None once it passes limit; the stream is Werkzeug's, as Flask reads it
    (a declared length ends it; a chunked body without `wsgi.input_terminated` is empty)."""
    length = get_content_length(environ)
    if length is not None and length > limit:
        return None
    return _read_at_most(get_input_stream(environ), limit)


def _read_at_most(stream: IO[bytes], limit: int) -> bytes | None:
    """Up to limit bytes, or None when the stream holds more."""
    chunks, size = [], 0
    while chunk := stream.read(min(CHUNK_BYTES, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


class _Refused(ValueError):
    """Why a body cannot be queued."""


def _refuse_constant(name: str) -> None:
    """NaN, Infinity or -Infinity: Python's json reads them, JSON (and PostgreSQL's jsonb) does not."""
    raise _Refused(f"body holds {name}, which is not a JSON number")


def _refusal(body: bytes) -> str | None:
    """Why a body cannot be queued, or None for a UTF-8 JSON object nested at most MAX_NESTING deep."""
    try:
        document = _json_value(body)
    except _Refused as refused:
        return str(refused)
    if not isinstance(document, dict):
        return "body is not a JSON object"
    if _nests_deeper_than(MAX_NESTING, body, document):
        return f"body nests deeper than {MAX_NESTING} levels"
    return None


def _json_value(body: bytes) -> Any:
    """The body's JSON value, as json reads it; _Refused says why there is none."""
    try:
        # orjson reads a subset of what json reads (no NaN, no escaped lone surrogate, at most 1,024
        # levels) at a third of the cost; json reads what orjson refuses, or says why it cannot.
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode(), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise _Refused("body is not UTF-8") from None
    except RecursionError:  # json gives up near Python's recursion limit, long after MAX_NESTING
        raise _Refused(f"body nests deeper than {MAX_NESTING} levels") from None
    except json.JSONDecodeError:
        raise _Refused("body is not JSON") from None
    except _Refused:
        raise
    except ValueError:  # an integer over Python's limit of 4,300 digits for converting a string
        raise _Refused("body holds a number too long to read") from None


def _nests_deeper_than(limit: int, body: bytes, document: dict[str, Any]) -> bool:
    """Whether objects and arrays nest more than limit levels deep (`{}` is one level).

    The hot path walks nothing: the count of opening brackets bounds the depth from above at C speed,
    so only a body with more brackets than the limit (a large batch, or a hostile body) is walked.
    """
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    level: list[dict[str, Any] | list[Any]] = [document]
    for _ in range(limit):
        # json makes exact dicts and lists, and a type lookup is a third faster than isinstance here.
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if type(child) in _CONTAINERS
        ]
        if not level:
            return False
    return True
