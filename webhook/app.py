"""The web app Meta calls: the verify-token handshake and the probes in Flask, signed POSTs in front of it.

webhook.intake answers POST /webhook itself, in plain WSGI, and hands every other request to Flask.
"""

import hmac
import json
import logging

from flask import Flask, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from runtime import metrics
from runtime.config import WebConfig
from runtime.inbox import Inbox
from runtime.logs import hide
from runtime.redis_client import web_client
from webhook.group_push import GroupPush
from webhook.intake import Intake

log = logging.getLogger(__name__)


def create_app(config: WebConfig | None = None, redis: Redis | None = None) -> Flask:
    config = config or WebConfig.from_env()
    hide(*config.app_secrets, config.verify_token, config.metrics_token)
    redis = redis if redis is not None else web_client(config.redis_url)
    handoff = Inbox(redis, config.queue)
    inbox = GroupPush(
        *(handoff.single_caller_push(config.replica_wait) for _ in range(config.push_connections))
    )
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

    # Intake answers POST /webhook before Flask dispatches; the rule is here for the routing Flask does
    # answer (405's Allow header names POST).
    app.add_url_rule("/webhook", endpoint="receive", methods=["POST"])

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        try:
            redis.ping()
        except RedisError as error:
            return jsonify(error=f"redis: {type(error).__name__}"), 503
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
        return jsonify(error="internal error"), 500

    app.wsgi_app = Intake(config, inbox, app.wsgi_app)  # type: ignore[method-assign]
    return app
