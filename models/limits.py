"""What each column can hold, read from its declared type: the one place length and range limits come from.

The workers check every row against these before writing, so a value that does not fit sets its own item
aside (with a note naming the column) instead of failing the whole transaction.
"""

from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache

from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger, String, Table
from sqlalchemy.types import TypeEngine

# Why a value does not fit, or None when it does.
Check = Callable[[object], str | None]
# Signed integer bounds, largest type first: BigInteger and SmallInteger are also Integers.
INTEGER_BITS = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))


def row_problems(table: Table, row: Mapping[str, object]) -> list[str]:
    """Every value of row that its column in table cannot hold, as 'column: why'."""
    checks = _checks(table)
    found = []
    for name, value in row.items():
        if value is not None and (check := checks.get(name)) and (why := check(value)) is not None:
            found.append(f"{name}: {why}")
    return found


@cache
def _checks(table: Table) -> dict[str, Check]:
    """The columns with a limit, each with its check: built once per table, run for every row."""
    return {c.name: check for c in table.columns if (check := _check_for(c.type)) is not None}


def _check_for(kind: TypeEngine[object]) -> Check | None:
    if isinstance(kind, String) and kind.length:
        return _longer_than(kind.length)
    if isinstance(kind, Integer):
        bits = next(bits for integer_type, bits in INTEGER_BITS if isinstance(kind, integer_type))
        return _outside_integer(bits)
    if isinstance(kind, Numeric) and kind.precision is not None:
        return _outside_numeric(kind.precision - (kind.scale or 0))
    return None


def _longer_than(length: int) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, str) and len(value) > length:
            return f"{len(value)} characters, at most {length} fit"
        return None

    return check


def _outside_integer(bits: int) -> Check:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1)

    def check(value: object) -> str | None:
        if isinstance(value, int) and not low <= value < high:
            return f"{_short(value)} is out of range for a {bits}-bit integer"
        return None

    return check


def _outside_numeric(whole_digits: int) -> Check:
    def check(value: object) -> str | None:
        if not isinstance(value, Decimal | int):
            return None
        number = Decimal(value)
        if not number.is_finite():
            return f"{number} is not a finite number"
        if number != 0 and number.adjusted() >= whole_digits:
            return f"{_short(number)} is out of range (at most {whole_digits} digits before the point)"
        return None

    return check


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
