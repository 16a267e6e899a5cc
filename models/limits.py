"""What each column can hold, read from its declared type: the one place length and range limits come from.

The workers check every row against these before writing, so a value that does not fit sets its own item
aside (with a note naming the column) instead of failing the whole transaction.
"""

from collections.abc import Mapping
from decimal import Decimal
from functools import cache

from sqlalchemy import BigInteger, Column, Integer, Numeric, SmallInteger, String, Table

# Signed integer bounds, largest type first: BigInteger and SmallInteger are also Integers.
INTEGER_BITS = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))


def problem(column: Column[object], value: object) -> str | None:
    """Why value cannot be stored in column, or None when it fits."""
    kind = column.type
    if isinstance(value, str) and isinstance(kind, String) and kind.length and len(value) > kind.length:
        return f"{len(value)} characters, at most {kind.length} fit"
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(kind, Integer):
        bits = next(bits for integer_type, bits in INTEGER_BITS if isinstance(kind, integer_type))
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return f"{_short(value)} is out of range for a {bits}-bit integer"
    if isinstance(value, Decimal | int) and isinstance(kind, Numeric) and kind.precision is not None:
        number = Decimal(value)
        if not number.is_finite():
            return f"{number} is not a finite number"
        whole_digits = kind.precision - (kind.scale or 0)
        if number != 0 and number.adjusted() >= whole_digits:
            return f"{_short(number)} is out of range (at most {whole_digits} digits before the point)"
    return None


def row_problems(table: Table, row: Mapping[str, object]) -> list[str]:
    """Every value of row that its column in table cannot hold, as 'column: why'."""
    found = []
    for column in _limited_columns(table):
        if (why := problem(column, row.get(column.name))) is not None:
            found.append(f"{column.name}: {why}")
    return found


@cache
def _limited_columns(table: Table) -> tuple[Column[object], ...]:
    return tuple(c for c in table.columns if isinstance(c.type, String | Integer | Numeric))


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
