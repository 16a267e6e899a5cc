"""Many rows in one INSERT: the workers' bulk statements, rendered by the driver rather than by SQLAlchemy.

SQLAlchemy sends a list of rows as one multi-row INSERT (its "insertmanyvalues"), but first binds every
value of every row in Python, through its parameter machinery; in bench/profile_worker.py that was the
largest single share of the worker's own CPU. On PostgreSQL, psycopg2 renders a row in C (`mogrify`), so
here SQLAlchemy compiles each statement once, psycopg2 renders the rows into its VALUES, and SQLAlchemy
runs the result as plain SQL: its transaction, error classes (IntegrityError, OperationalError) and
disconnect handling stay the same. Elsewhere (SQLite) the rows go through SQLAlchemy as usual.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Row
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

AnyRow = Row[*tuple[Any, ...]]
ROWS_PER_STATEMENT = 1000  # SQLAlchemy's own page for a multi-row INSERT


@dataclass(frozen=True)
class _Form:
    """A statement split around the placeholders of one row, for one set of column keys."""

    head: str
    row: str
    tail: str
    constants: dict[str, Any]  # the statement's own bound values (a CASE's literals), not a row's
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]  # how SQLAlchemy would convert a value


_forms: dict[tuple[Insert, tuple[str, ...]], _Form] = {}


def insert_rows(session: Session, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> list[AnyRow]:
    """Run an INSERT ... RETURNING for every row (all with the same keys); return what it returned.

    RETURNING is what makes SQLAlchemy compile the statement's one-row VALUES apart (and send a list of
    rows as one statement itself); an upsert's rows must be distinct by its conflict key.
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
    row = f"({compiled.insert_single_values_expr})"
    head, found, tail = compiled.string.partition(row)
    if not found:
        raise ValueError(f"an INSERT with RETURNING was expected: {compiled.string[:200]}")
    binds = compiled.binds
    form = _Form(
        head,
        row,
        tail,
        {name: bind.effective_value for name, bind in binds.items() if name not in keys},
        tuple(
            (key, processor)
            for key in keys
            if key in binds
            and (processor := binds[key].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ),
    )
    _forms[(statement, keys)] = form
    return form


def _run(connection: Connection, form: _Form, rows: Sequence[Mapping[str, Any]]) -> list[AnyRow]:
    raw = connection.connection.dbapi_connection
    assert raw is not None, "a connection in a transaction is open"
    cursor = raw.cursor()
    try:
        rendered = [
            cursor.mogrify(form.head, form.constants),
            b",".join(cursor.mogrify(form.row, _converted(form, row)) for row in rows),
            cursor.mogrify(form.tail, form.constants),
        ]
    finally:
        cursor.close()
    # SQLAlchemy hands psycopg2 an empty parameter dict, so a literal % must be doubled.
    sql = b"".join(rendered).replace(b"%", b"%%").decode()  # the engine talks UTF-8 (models/db.py)
    try:
        result = connection.exec_driver_sql(sql)
    except DBAPIError as error:
        # The rendered SQL holds the rows' values: errors and logs show the placeholders instead, as
        # SQLAlchemy's hide_parameters does for its own statements.
        error.statement = form.head + form.row + form.tail
        raise
    return list(result)


def _converted(form: _Form, row: Mapping[str, Any]) -> Mapping[str, Any]:
    if not form.processors:
        return row
    converted = dict(row)
    for key, processor in form.processors:
        converted[key] = processor(converted[key])
    return converted
