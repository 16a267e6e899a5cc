"""`wahooks migrate`: bring the database to the latest migration (alembic upgrade head)."""

from alembic import command

from models.db import alembic_config


def upgrade(database_url: str, sql: bool = False) -> None:
    command.upgrade(alembic_config(database_url), "head", sql=sql)
