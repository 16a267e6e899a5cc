"""What JSON columns store: orjson's text, or json's where orjson refuses, always the same JSON values."""

import json
from decimal import Decimal
from typing import Any

import pytest

from models.db import _dumps


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param({"price": Decimal("12.50")}, {"price": 12.5}, id="a Decimal price"),
        pytest.param({"id": Decimal("120363024")}, {"id": 120363024}, id="a whole Decimal as an integer"),
        pytest.param({"n": 2**70}, {"n": 2**70}, id="an integer past 64 bits (json's)"),
        pytest.param({"n": Decimal("1e400")}, {"n": "1E+400"}, id="a number no float holds, as text"),
        pytest.param({"text": "Grüße 👋"}, {"text": "Grüße 👋"}, id="non-ASCII text"),
        pytest.param({"a": [1, None, True, {"b": "c"}]}, {"a": [1, None, True, {"b": "c"}]}, id="nesting"),
    ],
)
def test_a_json_column_stores_the_same_json_value(value: Any, stored: Any) -> None:
    assert json.loads(_dumps(value)) == stored


def test_non_ascii_is_written_as_itself() -> None:
    assert _dumps({"text": "Grüße"}) == '{"text":"Grüße"}'
