"""Alembic environment: the database from DATABASE_URL, the schema from the models."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

import models
from runtime.config import database_url

config = context.config
if config.config_file_name is not None:  # alembic.ini, when run as `alembic` from a checkout
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or database_url()


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (`alembic upgrade head --sql`), no database needed."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with create_engine(_url(), poolclass=pool.NullPool).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
