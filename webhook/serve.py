"""The Procfile's web process: granian's own command line (`python -m webhook.serve [granian options] APP`).

It adds three things to `granian`: the app is imported before the port is bound, so a configuration
error stops start-up once with its message (webhook/wsgi.py) rather than in every worker; granian's
own log lines (start-up, workers, shutdown, access log) come out in the app's format; and, unless
PROMETHEUS_MULTIPROC_DIR is set, its worker processes share a fresh directory for their metrics
(runtime/metrics.py), so a scrape of any of them counts the requests all of them answered.
It imports nothing of the app but the target it is given, so it serves any WSGI app the same way.
"""

import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from granian.cli import cli

GRANIAN_LOGGERS = ("_granian", "granian.access")


def log_config(log_format: str | None) -> dict[str, Any]:
    """granian's logging dictConfig: its loggers write to stderr through the app's formatter."""
    formatter = "runtime.logs.TextFormatter" if log_format == "text" else "runtime.logs.JsonFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"wahooks": {"()": formatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "wahooks", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False} for name in GRANIAN_LOGGERS
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        # GRANIAN_* variables set options, as they do for the `granian` command itself.
        context = cli.make_context("granian", list(args), auto_envvar_prefix="GRANIAN")
    except click.exceptions.Exit as done:  # --help, --version
        sys.exit(done.exit_code)
    except click.ClickException as error:  # a usage error: said as granian would say it
        error.show()
        sys.exit(error.exit_code)
    with tempfile.TemporaryDirectory(prefix="wahooks-web-") as directory:
        # Before the app's import: prometheus_client picks its multiprocess mode when first imported.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", directory)
        importlib.import_module(str(context.params["app"]).partition(":")[0])
        # granian reads its logging configuration from a file, once, while it starts.
        config = Path(directory) / "logging.json"
        config.write_text(json.dumps(log_config(os.environ.get("LOG_FORMAT"))))
        context.params["log_config"] = config
        with context:
            cli.invoke(context)


if __name__ == "__main__":
    main()
