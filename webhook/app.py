"""The Flask app Meta calls: the verify-token handshake, and signed POSTs handed to the Redis inbox."""

import hmac
import json
import logging
from typing import IO

from flask import Flask, Response, jsonify, request
from redis import Redis
from redis.exceptions import RedisError

from runtime.config import WebConfig
from runtime.inbox import Inbox, body_digest
from runtime.logs import hide
from runtime.redis_client import web_client
from webhook.group_push import GroupPush
from webhook.signature import Verdict, verify

log = logging.getLogger(__name__)
CHUNK_BYTES = 64 * 1024
# The two answers to an accepted POST, byte for byte as jsonify writes them, encoded once: the hot path.
_QUEUED = {flag: json.dumps({"queued": flag}, separators=(",", ":")) + "\n" for flag in (True, False)}


def create_app(config: WebConfig | None = None, redis: Redis | None = None) -> Flask:
    config = config or WebConfig.from_env()
    hide(*config.app_secrets, config.verify_token)
    redis = redis if redis is not None else web_client(config.redis_url)
    inbox = GroupPush(Inbox(redis, config.queue).push_many)
    app = Flask(__name__)

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
            return _error("body too large", 413)
        body = _read_at_most(request.stream, config.max_body_bytes)
        if body is None:
            return _error("body too large", 413)
        verdict = verify(request.headers.get("X-Hub-Signature-256"), body, config.app_secrets)
        if verdict is not Verdict.VALID:
            log.warning(
                "webhook rejected: signature %s", verdict.value, extra={"event": body_digest(body)[:16]}
            )
            return _error(f"signature {verdict.value}", 401 if verdict is Verdict.MISSING else 403)
        if not _is_json_object(body):
            return _error("body is not a JSON object", 400)
        try:
            queued = inbox.push(body)
        except (RedisError, TimeoutError) as error:
            log.error("redis unavailable, answering 503: %s", type(error).__name__)
            return _error("temporarily unavailable", 503)
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


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
