"""The web benchmark's baselines, served by the same web server command as ours.

`baseline_apps:hello` answers 200 to a POST and does nothing else; `baseline_apps:lpush` checks the
signature exactly as ours does and LPUSHes the raw body (one Redis round trip, no deduplication, no
JSON check): the ceiling for an endpoint that hands bodies to Redis.
Environment: REDIS_URL, WHATSAPP_APP_SECRET, BENCH_LPUSH_KEY.
"""

import os

from flask import Flask, request

from runtime.redis_client import web_client
from webhook.signature import Verdict, verify


def _hello_app() -> Flask:
    app = Flask("hello")

    @app.post("/webhook")
    def receive() -> tuple[str, int]:
        return "ok", 200

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app


def _lpush_app() -> Flask:
    app = Flask("lpush")
    secrets = (os.environ.get("WHATSAPP_APP_SECRET", ""),)
    redis = web_client(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    key = os.environ.get("BENCH_LPUSH_KEY", "bench:lpush")

    @app.post("/webhook")
    def receive() -> tuple[str, int]:
        body = request.get_data(cache=False)
        if verify(request.headers.get("X-Hub-Signature-256"), body, secrets) is not Verdict.VALID:
            return "forbidden", 403
        redis.lpush(key, body)
        return "ok", 200

    @app.get("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app


hello = _hello_app()
lpush = _lpush_app()
