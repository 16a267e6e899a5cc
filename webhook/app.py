"""The Flask app Meta calls: the verify-token handshake, and signed POSTs handed to the Redis inbox."""

import hmac
import json
import logging
from typing import IO, Any

import orjson
from flask import Flask, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from runtime import metrics
from runtime.config import WebConfig
from runtime.inbox import Inbox, body_digest
from runtime.logs import hide
from runtime.redis_client import web_client
from webhook.group_push import GroupPush
from webhook.signature import Verdict, verify

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
# Meta's bodies nest a dozen levels at most (entry > changes > value > messages > contacts > phones);
# 64 leaves room for fields Meta may add and keeps whoever reads the body recursively (the workers'
# parser, json itself) far below Python's recursion limit of 1,000.
MAX_NESTING = 64
_CONTAINERS = (dict, list)
# The two answers to an accepted POST, byte for byte as jsonify writes them, encoded once: the hot path.
_QUEUED = {flag: json.dumps({"queued": flag}, separators=(",", ":")) + "\n" for flag in (True, False)}


def create_app(config: WebConfig | None = None, redis: Redis | None = None) -> Flask:
    config = config or WebConfig.from_env()
    hide(*config.app_secrets, config.verify_token, config.metrics_token)
    redis = redis if redis is not None else web_client(config.redis_url)
    inbox = GroupPush(Inbox(redis, config.queue).single_caller_push())
    app = Flask(__name__)
    scraped = metrics.scrape_registry(redis, config.queue, config.metrics_directory)

    @app.get("/webhook")
    def handshake() -> Response | tuple[str, int]:
        args = request.args
        token = args.get("hub.verify_token", "")
        challenge = args.get("hub.challenge")
        token_ok = hmac.compare_digest(token.encode(), config.verify_token.encode())
        if args.get("hub.mode") != "subscribe" or not token_ok or challenge is None:
            return "forbidden", 403
        return Response(challenge, 200, mimetype="text/plain")

    @app.post("/webhook")
    def receive() -> tuple[Response, int]:
        if request.content_length is not None and request.content_length > config.max_body_bytes:
            metrics.TOO_LARGE.inc()
            return _error("body too large", 413)
        body = _read_at_most(request.stream, config.max_body_bytes)
        if body is None:
            metrics.TOO_LARGE.inc()
            return _error("body too large", 413)
        verdict = verify(request.headers.get("X-Hub-Signature-256"), body, config.app_secrets)
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
            queued = inbox.push(body)
        except (RedisError, TimeoutError) as error:
            log.error("redis unavailable, answering 503: %s", type(error).__name__)
            metrics.REDIS_UNAVAILABLE.inc()
            return _error("temporarily unavailable", 503)
        (metrics.ACCEPTED if queued else metrics.DUPLICATE).inc()
        return Response(_QUEUED[queued], 200, mimetype="application/json"), 200

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            redis.ping()
        except RedisError as error:
            return _error(f"redis: {type(error).__name__}", 503)
        return jsonify(ready=True), 200

    @app.get("/metrics")
    def scrape() -> Response:
        """Prometheus's scrape, for a bearer of METRICS_TOKEN only: the webhook's port faces the internet."""
        expected = f"Bearer {config.metrics_token}".encode()
        presented = request.headers.get("Authorization", "").encode()
        if config.metrics_token is None or not hmac.compare_digest(presented, expected):
            abort(404)  # as if there were no such page: nothing tells a prober that metrics live here
        return Response(generate_latest(scraped), 200, content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> BaseResponse:
        """Every status Flask raises itself (404, 405, ...) answers JSON too, with its headers (Allow)."""
        response = error.get_response()
        response.set_data(json.dumps({"error": error.name.lower()}))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        """A bug: logged with its traceback (the log formatter masks secrets), answered in JSON."""
        log.error("unexpected error answering %s %s", request.method, request.path, exc_info=error)
        return _error("internal error", 500)

    return app


def _read_at_most(stream: IO[bytes], limit: int) -> bytes | None:
    """The whole body, or None once it passes limit (a chunked body announces no length)."""
    chunks, size = [], 0
    while chunk := stream.read(min(CHUNK_BYTES, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify(error=message), status


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
