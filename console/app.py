"""The console's Flask app: the status page, the charts, requeue, and rq-dashboard under /rq.

Every route, rq-dashboard's included, answers only an operator who presents CONSOLE_TOKEN: as
`Authorization: Bearer <token>` (scripts), or once through the login form, which sets a signed session
cookie (browsers). Anyone else gets 401 and the login form, whatever the path: nothing tells a prober
which pages exist. The cookie is signed with a key derived from the token, so changing the token ends
every session; it is HttpOnly and SameSite=Strict, so no other site can make a browser send it
(rq-dashboard changes state with plain POSTs, and requeues a queue's failed jobs with a GET).
"""

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta

import rq_dashboard
from flask import Flask, Response, abort, flash, redirect, render_template, request, session, url_for
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq_dashboard.web import setup_rq_connection
from sqlalchemy.exc import OperationalError
from werkzeug.wrappers import Response as BaseResponse

from cli import analytics, failures
from cli.tenants import TenantError
from console import status
from models.db import Database
from runtime.config import ConsoleConfig
from runtime.logs import hide
from runtime.redis_client import web_client

log = logging.getLogger(__name__)

SESSION_HOURS = 12
DASHBOARD_PREFIX = "/rq"
REALM = 'Bearer realm="wahooks console"'


def session_key(token: str) -> bytes:
    """The key that signs session cookies: derived from the token, which the cookie never holds."""
    return hmac.new(token.encode(), b"wahooks console session", hashlib.sha256).digest()


def create_app(
    config: ConsoleConfig | None = None, db: Database | None = None, redis: Redis | None = None
) -> Flask:
    config = config or ConsoleConfig.from_env()
    hide(config.token)
    db = db or Database(config.database_url)
    # The web side's client: a page whose Redis stalls answers 503 within a second rather than hang.
    queue = Queue(config.queue, connection=redis or web_client(config.redis_url))
    expected_header = f"Bearer {config.token}".encode()

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=session_key(config.token),
        SESSION_COOKIE_NAME="wahooks_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        RQ_DASHBOARD_REDIS_URL=config.redis_url,
        # Read-only but for requeue, as the status page: a deleted job's bodies would leave Redis.
        RQ_DASHBOARD_DISABLE_DELETE=True,
    )
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=DASHBOARD_PREFIX)
    setup_rq_connection(app)

    def authenticated() -> bool:
        header = request.headers.get("Authorization")
        if header is not None:
            return hmac.compare_digest(header.encode(), expected_header)
        return session.get("operator") is True

    def refusal(message: str | None = None) -> tuple[str, int, dict[str, str]]:
        return render_template("login.html", message=message), 401, {"WWW-Authenticate": REALM}

    @app.before_request
    def authenticate() -> tuple[str, int, dict[str, str]] | None:
        # Before routing's verdict too: an unknown path is a 401 like any other, not a 404.
        if (request.endpoint == "login" and request.method == "POST") or authenticated():
            return None
        return refusal()

    @app.after_request
    def private(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"  # a framed requeue button could be clicked for you
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.post("/login")
    def login() -> BaseResponse | tuple[str, int, dict[str, str]]:
        presented = request.form.get("token", "")
        if not hmac.compare_digest(presented.encode(), config.token.encode()):
            log.warning("console login refused", extra={"event": "console_login_refused"})
            return refusal("That is not the console's token.")
        session.clear()
        session["operator"] = True
        session.permanent = True
        return redirect(url_for("overview"), 303)

    @app.post("/logout")
    def logout() -> BaseResponse:
        session.clear()
        return redirect(url_for("overview"), 303)

    @app.get("/")
    def overview() -> str:
        tenants = analytics.select_tenants(db, None)
        chosen = request.args.get("tenant") or (tenants[0].phone_number_id if tenants else None)
        return render_template(
            "status.html",
            now=datetime.now(UTC),
            intake=status.intake(db),
            queue=status.queue_state(queue),
            failures=status.failed(db, queue),
            bodies=status.last_bodies(db),
            tenants=tenants,
            tenant=chosen,
            days=_days(),
            dashboard=f"{DASHBOARD_PREFIX}/",
        )

    @app.post("/requeue")
    def requeue() -> BaseResponse:
        """One failed job (job_id) or all (all=1) back on the queue, as `wahooks requeue-failed` does."""
        job_ids = request.form.getlist("job_id")
        if not job_ids and request.form.get("all") != "1":
            abort(400)
        try:
            count = failures.requeue(queue, job_ids or None)
        except (NoSuchJobError, InvalidJobOperation):
            flash("That job is no longer in the failed registry (requeued or expired meanwhile).")
        else:
            log.info("failed jobs requeued from the console", extra={"event": "requeue", "count": count})
            flash(f"{count} {'job' if count == 1 else 'jobs'} requeued.")
        return redirect(url_for("overview"), 303)

    @app.get("/chart/<phone_number_id>.png")
    def chart(phone_number_id: str) -> Response:
        try:
            png = status.chart_png(db, phone_number_id, _days())
        except TenantError:
            abort(404)
        return Response(png, mimetype="image/png")

    @app.errorhandler(RedisError)
    def redis_down(error: RedisError) -> tuple[str, int]:
        log.warning("console: Redis unavailable", extra={"error": type(error).__name__})
        return "Redis does not answer (REDIS_URL); the page needs it. Try again shortly.", 503

    @app.errorhandler(OperationalError)
    def database_down(error: OperationalError) -> tuple[str, int]:
        log.warning("console: database unavailable", extra={"error": type(error).__name__})
        return "The database does not answer (DATABASE_URL); the page needs it. Try again shortly.", 503

    return app


def _days() -> int:
    """The chart's span in days, from ?days= (default 30, at most a year)."""
    days = request.args.get("days", type=int) or status.DEFAULT_CHART_DAYS
    return min(max(days, 1), status.MAX_CHART_DAYS)
