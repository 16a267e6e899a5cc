"""The WSGI entry point the web server loads (`webhook.wsgi:app`); a configuration error exits, saying why."""

import sys

from runtime import logs
from runtime.config import ConfigError
from webhook.app import create_app

logs.configure()
try:
    app = create_app()
except ConfigError as error:
    sys.stderr.write(f"wahooks web: configuration error: {error}\n")
    sys.exit(2)
