"""The API's WSGI entry point (`api.wsgi:app`, the Procfile's `api:` line). It checks the database before the
port is bound: a configuration error or a database behind the code's migrations exits 2, an unreachable
database 3 (for the supervisor to restart it), each saying why in one line."""

import sys

from sqlalchemy.exc import OperationalError

from api.app import create_app
from models.db import SchemaOutOfDate
from runtime import logs
from runtime.config import ConfigError

logs.configure()
try:
    app = create_app()
except (ConfigError, SchemaOutOfDate) as error:
    sys.stderr.write(f"wahooks api: {error}\n")
    sys.exit(2)
except OperationalError as error:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    sys.stderr.write(f"wahooks api: cannot reach the database at DATABASE_URL: {reason}\n")
    sys.exit(3)
