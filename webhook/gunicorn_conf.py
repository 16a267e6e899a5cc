"""gunicorn settings the Procfile loads: gunicorn's own log lines in the same format as the app's."""

import os

_formatter = (
    "runtime.logs.TextFormatter" if os.environ.get("LOG_FORMAT") == "text" else "runtime.logs.JsonFormatter"
)

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"wahooks": {"()": _formatter}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "wahooks", "stream": "ext://sys.stderr"}
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
