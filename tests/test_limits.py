"""models/limits.py: what each column can hold, read from its declared type."""

from decimal import Decimal

import pytest
from sqlalchemy import BigInteger, Column, MetaData, Numeric, SmallInteger, String, Table, Text

from models.limits import row_problems

PROBE = Table(
    "limits_probe",
    MetaData(),
    Column("code", String(4)),
    Column("note", Text),
    Column("count", SmallInteger),
    Column("big", BigInteger),
    Column("price", Numeric(6, 2)),
)


@pytest.mark.parametrize(
    ("row", "problems"),
    [
        pytest.param(
            {"code": "abcd", "note": "x" * 10_000, "count": 32767, "price": Decimal("9999.99")}, [], id="fits"
        ),
        pytest.param({"code": None, "count": None, "unknown": "x" * 999}, [], id="nulls and unknown keys"),
        pytest.param({"code": "abcde"}, ["code: 5 characters, at most 4 fit"], id="a string too long"),
        pytest.param({"code": 12345}, [], id="a non-string in a string column is the driver's business"),
        pytest.param(
            {"count": 32768, "big": -(2**63) - 1},
            [
                "count: 32768 is out of range for a 16-bit integer",
                "big: -9223372036854775809 is out of range for a 64-bit integer",
            ],
            id="integers out of range, in the row's order",
        ),
        pytest.param(
            {"price": Decimal("10000")},
            ["price: 10000 is out of range (at most 4 digits before the point)"],
            id="a number too large",
        ),
        pytest.param({"price": Decimal("NaN")}, ["price: NaN is not a finite number"], id="not a number"),
    ],
)
def test_each_value_that_does_not_fit_is_named_with_why(row: dict[str, object], problems: list[str]) -> None:
    assert row_problems(PROBE, row) == problems
