"""Many rows in one INSERT: the workers' bulk statements, their rows sent as one JSON document.

SQLAlchemy sends a list of rows as one multi-row INSERT (its "insertmanyvalues"), but first binds every
value of every row in Python, through its parameter machinery; in bench/profile_worker.py that was the
largest single share of the worker's own CPU, and rendering each row with psycopg2's `mogrify` instead
still cost 7-10 µs a row. On PostgreSQL the rows now go as one JSON array (orjson: about 1 µs a row) that
the statement unpacks itself, `INSERT ... SELECT ... FROM json_populate_recordset(NULL::table, rows)`,
each value read by its column's own type; PostgreSQL spends no more on that than on parsing a VALUES list
of the same rows (bench/README.md). SQLAlchemy compiles each statement once and runs it: its
transaction, error classes (IntegrityError, OperationalError) and disconnect handling stay the same, and
errors show the statement with its placeholder, never the rows. Elsewhere (SQLite) the rows go through
SQLAlchemy as usual.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Insert, LargeBinary, Numeric, Row, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from models.db import json_default

AnyRow = Row[*tuple[Any, ...]]
ROWS_PER_STATEMENT = 1000  # SQLAlchemy's own page for a multi-row INSERT
ROWS = "bulk_rows"  # the one parameter of a rendered statement: the rows, as a JSON array


@dataclass(frozen=True)
class _Form:
    """A statement rewritten to read its rows from one JSON array, for one set of column keys."""

    sql: str
    constants: dict[str, Any]  # the statement's own bound values (a CASE's literals), not a row's
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]  # values JSON would not carry exactly


_forms: dict[tuple[Insert, tuple[str, ...]], _Form] = {}


def insert_rows(session: Session, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> list[AnyRow]:
    """Run an INSERT ... RETURNING for every row (all with the same keys); return what it returned.

    RETURNING is what makes SQLAlchemy compile the statement's one-row VALUES apart (and send a list of
    rows as one statement itself); an upsert's rows must be distinct by its conflict key. Rows are
    inserted in the order given, so sorted rows take their locks in that order.
    """
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        result = connection.execute(statement, list(rows))
        return list(result) if result.returns_rows else []
    form = _form(statement, tuple(rows[0]), connection.dialect)
    returned: list[AnyRow] = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        returned += _run(connection, form, rows[start : start + ROWS_PER_STATEMENT])
    return returned


def _form(statement: Insert, keys: tuple[str, ...], dialect: Dialect) -> _Form:
    held = _forms.get((statement, keys))
    if held is not None:
        return held
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    row = compiled.insert_single_values_expr or ""
    head, found, tail = compiled.string.partition(f"VALUES ({row})")
    if not row or not found:
        raise ValueError(f"an INSERT with RETURNING was expected: {compiled.string[:200]}")
    table = statement.table
    assert isinstance(table, Table), "an INSERT names its table"
    quote = dialect.identifier_preparer.quote
    for key in keys:
        placeholder = f"%({key})s"
        if placeholder not in row or table.c[key].name != key:
            raise ValueError(f"column {key!r} has no placeholder of its own in {row[:200]}")
        # Each value of the row, read from the JSON row by its column's name and type.
        row = row.replace(placeholder, f"r.{quote(key)}")
    source = f"json_populate_recordset(NULL::{quote(table.name)}, %({ROWS})s::json) AS r"
    form = _Form(
        f"{head}SELECT {row} FROM {source}{tail}",
        {name: bind.effective_value for name, bind in compiled.binds.items() if name not in keys},
        tuple((key, convert) for key in keys if (convert := _converter(table, key)) is not None),
    )
    _forms[(statement, keys)] = form
    return form


def _converter(table: Table, key: str) -> Callable[[Any], Any] | None:
    """How a value becomes JSON that its column reads back exactly; None when JSON's own does."""
    kind = table.c[key].type
    if isinstance(kind, Numeric) and kind.asdecimal:
        return _exact_number  # a JSON number would be a float on its way: 0.1 + 0.2
    if isinstance(kind, LargeBinary):
        return _bytea_text
    return None


def _exact_number(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _bytea_text(value: Any) -> Any:
    return "\\x" + value.hex() if isinstance(value, bytes) else value


def _run(connection: Connection, form: _Form, rows: Sequence[Mapping[str, Any]]) -> list[AnyRow]:
    if form.converters:
        rows = [_converted(form, row) for row in rows]
    parameters = {**form.constants, ROWS: _document(rows)}
    return list(connection.exec_driver_sql(form.sql, parameters).all())


def _converted(form: _Form, row: Mapping[str, Any]) -> Mapping[str, Any]:
    converted = dict(row)
    for key, convert in form.converters:
        converted[key] = convert(converted[key])
    return converted


def _document(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a JSON array; JSON columns' values nested in it as the JSON they hold."""
    try:
        return orjson.dumps(rows, default=json_default, option=orjson.OPT_NAIVE_UTC).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits, in a body's raw JSON: json writes any
        return json.dumps(rows, default=_any_default, ensure_ascii=False)


def _any_default(value: object) -> object:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return json_default(value)
