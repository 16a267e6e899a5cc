"""The console's WSGI entry point (`console.wsgi:app`, served by `wahooks console`); a configuration error
exits, saying why."""

import sys

from console.app import create_app
from runtime import logs
from runtime.config import ConfigError

logs.configure()
try:
    app = create_app()
except ConfigError as error:
    sys.stderr.write(f"wahooks console: configuration error: {error}\n")
    sys.exit(2)
