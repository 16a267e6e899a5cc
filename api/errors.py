"""The API's one error object: every answer that is not a success has this shape, whatever its cause.

`{"status": 404, "code": "not_found", "message": "...", "detail": {...}}`: `code` is the HTTP reason in
snake case, `message` says what went wrong in words, `detail` carries what a program can act on (the fields a
validation error names, the statuses an order may move to).
"""

import logging
from typing import Any

from apiflask import APIFlask, HTTPError
from sqlalchemy.exc import OperationalError
from werkzeug.http import HTTP_STATUS_CODES

from runtime.logs import error_summary

log = logging.getLogger(__name__)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer", "description": "the HTTP status"},
        "code": {"type": "string", "description": "the HTTP reason in snake case: not_found, conflict, ..."},
        "message": {"type": "string"},
        "detail": {"type": "object", "description": "what a program can act on (fields, allowed values)"},
    },
    "required": ["status", "code", "message", "detail"],
}


def error_code(status: int) -> str:
    return HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_").replace("-", "_")


def error_body(status: int, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "code": error_code(status), "message": message, "detail": detail or {}}


def install(app: APIFlask) -> None:
    """Every error, apiflask's validation errors and werkzeug's 404/405 included, as the error object."""
    app.config["HTTP_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["VALIDATION_ERROR_SCHEMA"] = ERROR_SCHEMA

    @app.error_processor
    def as_error_object(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        body = error_body(error.status_code, error.message or error_code(error.status_code), error.detail)
        return body, error.status_code, error.headers

    # werkzeug's own HTTP errors (404, 405, a malformed body's 400) reach the processor above through
    # apiflask's handler for them; this one is for everything else.
    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[dict[str, Any], int]:
        if isinstance(error, OperationalError):  # the database is down or unreachable: worth a retry
            log.warning(
                "API: database unavailable", extra={"event": "api_error", "error": error_summary(error)}
            )
            return error_body(503, "the database does not answer; try again shortly"), 503
        # At ERROR its class only, since a database error's text may quote the row it refused (a customer's
        # number, a name); the traceback at DEBUG.
        log.error("API request failed", extra={"event": "api_error", "error": error_summary(error)})
        log.debug("API request failed", exc_info=error)
        return error_body(500, "internal error"), 500
