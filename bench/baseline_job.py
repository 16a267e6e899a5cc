"""bench/worker's baseline RQ job: parse one body, then one bulk INSERT ... ON CONFLICT (wamid) DO NOTHING.

It writes the required columns of whatsapp_messages (tenant_id, wamid, direction, status) for every
message and status id in the body, with psycopg2's execute_values (the fastest bulk insert measured
here, /work/shared/README.md) on a connection kept for the life of the worker process. Nothing
else: no raw body, no statuses table, no orders, no analytics.
Environment: DATABASE_URL (postgresql://user@host/db). Import path: bench/ on PYTHONPATH.
"""

import json
import os
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection
from psycopg2.extras import execute_values

INSERT = (
    "INSERT INTO whatsapp_messages (tenant_id, wamid, direction, status) VALUES %s"
    " ON CONFLICT (wamid) DO NOTHING"
)
TENANTS = "SELECT phone_number_id, tenant_id FROM whatsapp_business_settings WHERE is_active"

Row = tuple[int, str, str, str]

_connection: Connection | None = None
_tenants: dict[str, int] | None = None


def insert_message_rows(body: bytes) -> int:
    """The job: returns how many rows the statement was given."""
    rows = message_rows(json.loads(body), tenant_ids())
    if rows:
        db = connection()
        with db, db.cursor() as cursor:  # `with db` commits
            execute_values(cursor, INSERT, rows, page_size=len(rows))
    return len(rows)


def message_rows(document: dict[str, Any], tenants: dict[str, int]) -> list[Row]:
    """One row per wamid (messages inbound, statuses outbound), sorted so writers lock in one order."""
    rows: dict[str, Row] = {}
    for entry in document.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            tenant = tenants.get(value.get("metadata", {}).get("phone_number_id"))
            if tenant is None:
                continue
            for message in value.get("messages", []):
                rows.setdefault(message["id"], (tenant, message["id"], "inbound", "received"))
            for status in value.get("statuses", []):
                rows.setdefault(status["id"], (tenant, status["id"], "outbound", status["status"]))
    return [rows[wamid] for wamid in sorted(rows)]


def connection() -> Connection:
    global _connection
    if _connection is None or _connection.closed:
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://", 1)
        _connection = psycopg2.connect(url)
    return _connection


def tenant_ids() -> dict[str, int]:
    """phone_number_id -> tenant id, read once per process."""
    global _tenants
    if _tenants is None:
        db = connection()
        with db, db.cursor() as cursor:
            cursor.execute(TENANTS)
            _tenants = dict(cursor.fetchall())
    return _tenants
