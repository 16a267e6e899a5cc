"""Cursor pagination: a page of rows after the last one of the previous page, in a fixed order.

The cursor is opaque to clients: the sort key of the last row handed out (base64url of a JSON list). Each
page is one index range scan (`WHERE (sort key) < (cursor) ORDER BY sort key LIMIT n + 1`), however deep the
client pages, and rows written meanwhile neither repeat nor go missing on later pages.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from apiflask import abort
from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 512
BIGINT = 2**63
# A column or expression a list is ordered by (the last of a sort key is a unique id).
SortKey = ColumnElement[Any] | InstrumentedAttribute[Any]


@dataclass(frozen=True)
class Page:
    rows: list[tuple[Any, ...]]  # what the query selected, without the sort key
    next_cursor: str | None


def encode(values: Sequence[Any]) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, datetime | date) else v for v in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(cursor: str, keys: Sequence[SortKey]) -> list[Any]:
    """The sort key a cursor holds, each value of its column's type; a 422 for anything else."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(keys):
            raise ValueError(raw)
        return [_typed(value, key) for value, key in zip(raw, keys, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        # The same shape as any other invalid query parameter (apiflask's validation errors).
        abort(
            422, "cursor is not one this API handed out", {"query": {"cursor": ["not a cursor of this list"]}}
        )


def _typed(value: object, key: SortKey) -> Any:
    kind = key.type.python_type
    if kind is datetime and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if kind is date and isinstance(value, str):
        return date.fromisoformat(value)
    if kind is int and type(value) is int and -BIGINT <= value < BIGINT:
        return value
    if kind is str and isinstance(value, str) and "\x00" not in value:  # PostgreSQL text holds no NUL
        return value
    raise ValueError(value)


def page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    keys: Sequence[SortKey],
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> Page:
    """`limit` rows of query after the cursor, ordered by keys (a unique sort key, last column an id)."""
    if cursor is not None:
        position, last = tuple_(*keys), tuple_(*decode(cursor, keys))
        query = query.where(position < last if descending else position > last)
    order = [key.desc() if descending else key.asc() for key in keys]
    rows = session.execute(query.add_columns(*keys).order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    width = len(keys)
    next_cursor = encode(list(rows[-1][-width:])) if more else None
    return Page([tuple(row[:-width]) for row in rows], next_cursor)
