"""What the API reads and writes, as pydantic models: the one boundary where client JSON becomes typed values,
and the source of the OpenAPI description (apiflask renders these as its schemas).

Money is a decimal string in both directions ("12.5000"): a JSON number could lose digits on the way.
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    create_model,
)
from sqlalchemy.orm import InstrumentedAttribute

from api.pages import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT
from cli import analytics, catalog
from cli.currencies import ISO_4217
from models import WhatsAppCatalog, WhatsAppProduct
from models.analytics import COUNTERS, ORDER_REVENUE
from models.orders import ORDER_STATUSES

# NUMERIC(18, 4) as text (a webhook's order item may carry a negative price: it is stored as sent).
MONEY_PATTERN = r"^-?[0-9]{1,14}(\.[0-9]{1,4})?$"
ORDER_STATUS_NAMES = tuple(rule.status for rule in ORDER_STATUSES)
OrderStatusName = Literal["received", "confirmed", "shipped", "delivered", "cancelled"]
assert get_args(OrderStatusName) == ORDER_STATUS_NAMES  # the type spells out models/orders.py's table

Money = Annotated[
    Decimal,
    PlainSerializer(lambda value: str(value.quantize(catalog.PRICE_STEP)), return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["12.5000"]}),
]

# Patterns spell their classes out ([0-9], not \d): pydantic's regex engine reads \d and \s as Unicode, the
# JSON Schema (ECMA 262) dialect of the OpenAPI description as ASCII, and both must agree on what is valid.
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL
PRICE_PATTERN = r"^[0-9]{1,14}(\.[0-9]{1,4})?$"


def _text(column: InstrumentedAttribute[Any], description: str) -> Any:
    """A text field stored as given (a JSON string is exact: nothing to trim): from 1 character to as many
    as its column holds, and no NUL."""
    return Field(min_length=1, max_length=column.type.length, pattern=NO_NUL, description=description)


# The limits of the catalog import (cli/catalog.py), which are the columns': lengths, price range and places,
# currencies.
RetailerId = Annotated[
    str, _text(WhatsAppProduct.retailer_id, "the product's id in the business's own systems")
]
ProductName = Annotated[str, _text(WhatsAppProduct.name, "the product's name")]


def _price(value: object) -> Decimal:
    """A price as the pattern spells it, read exactly by the import's own parser (never through a float)."""
    if not isinstance(value, str):
        raise ValueError('price must be a string, such as "12.50" (a JSON number could lose digits)')
    price = catalog.parse_price(value)  # a CSV line's checks, in a CSV line's words
    if not re.fullmatch(PRICE_PATTERN, value):  # and written plainly: no exponent, sign or spaces
        raise ValueError(f"price {value!r} must be digits with at most 4 decimal places, such as 12.50")
    return price


Price = Annotated[
    Decimal,
    BeforeValidator(_price),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PRICE_PATTERN,
            "description": "a decimal string: at least 0, below 10^14, at most 4 decimal places",
            "examples": ["12.50"],
        }
    ),
]


def _currency(value: object) -> str:
    """An ISO 4217 code exactly as the description lists it (the import's check, in capitals only)."""
    if not isinstance(value, str) or value != value.upper():
        raise ValueError("currency must be an ISO 4217 code in capitals, such as EUR")
    return catalog.parse_currency(value)


Currency = Annotated[
    str,
    BeforeValidator(_currency),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217), "description": "ISO 4217"}),
]
CatalogName = Annotated[str, _text(WhatsAppCatalog.name, "the catalog's name")]
MetaCatalogId = Annotated[str, _text(WhatsAppCatalog.catalog_id, "Meta's id of the catalog")]


# Dates and times as RFC 3339 writes them, and nothing else: pydantic alone would also read a number as a Unix
# time (`until=0` as 1970-01-01), which the description does not allow.
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
TIME_PATTERN = r"[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"


def _day(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(DATE_PATTERN, value):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


def _moment(value: object) -> object:
    if not isinstance(value, str):
        return value
    if not re.fullmatch(DATE_PATTERN + TIME_PATTERN, value):
        raise ValueError("a time is written as RFC 3339 has it, with its offset: 2026-12-01T09:30:00Z")
    # Python reads neither a lower-case t or z nor a leap second (23:59:60, read as :59).
    moment = datetime.fromisoformat(re.sub(r":60(?=[.Z+-])", ":59", value.upper()))
    # In UTC: PostgreSQL takes no offset past 15:59, RFC 3339 any up to 23:59. A time that falls outside
    # the years 1 to 9999 once in UTC is before or after every order: the first or last time Python has.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


Day = Annotated[date, BeforeValidator(_day), WithJsonSchema({"type": "string", "format": "date"})]
Moment = Annotated[
    AwareDatetime, BeforeValidator(_moment), WithJsonSchema({"type": "string", "format": "date-time"})
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageQuery(Input):
    cursor: str | None = Field(
        None, max_length=MAX_CURSOR_LENGTH, description="next_cursor of the page before"
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


# Catalogs and products


class CatalogIn(Input):
    meta_catalog_id: MetaCatalogId
    name: CatalogName | None = None


class CatalogPatch(Input):
    name: CatalogName | None = Field(description="null clears it")


class CatalogOut(Output):
    id: int
    meta_catalog_id: str
    name: str | None
    created_at: datetime
    updated_at: datetime


class ProductIn(Input):
    retailer_id: RetailerId
    name: ProductName
    price: Price
    currency: Currency


class ProductPatch(Input):
    """The fields to change; one left out (or null) stays as it is."""

    name: ProductName | None = None
    price: Price | None = None
    currency: Currency | None = None


class ProductOut(Output):
    id: int
    catalog: int = Field(description="the id of its catalog in this API")
    retailer_id: str
    name: str
    price: Money
    currency: str
    created_at: datetime
    updated_at: datetime


# Orders


class OrderQuery(PageQuery):
    status: OrderStatusName | None = None
    wa_id: str | None = Field(None, max_length=64, pattern=NO_NUL, description="the customer's wa_id")
    since: Moment | None = Field(None, description="ordered at or after (RFC 3339, with offset)")
    until: Moment | None = Field(None, description="ordered before")


class ProductRef(Output):
    id: int
    retailer_id: str
    name: str


class OrderItemOut(Output):
    position: int
    product_retailer_id: str
    quantity: int
    item_price: Money
    currency: str | None
    product: ProductRef | None = Field(description="the catalog product it was linked to, if known")


class OrderOut(Output):
    id: int
    wamid: str
    wa_id: str | None = Field(description="the customer's")
    catalog_id: str | None
    status: OrderStatusName
    total_amount: Money
    currency: str | None
    note: str | None
    ordered_at: datetime
    created_at: datetime
    updated_at: datetime


class OrderDetail(OrderOut):
    items: list[OrderItemOut]


class OrderPatch(Input):
    status: OrderStatusName = Field(
        description="forward only: received -> confirmed -> shipped -> delivered; cancelled before delivered"
    )


# Conversations and customers


class MessageOut(Output):
    id: int
    wamid: str
    direction: str
    message_type: str | None = Field(description="Meta's type; null for a message seen only by its statuses")
    status: str = Field(description="received for an inbound message; sent, delivered, read or failed")
    body: str | None
    contact_name: str | None
    context_wamid: str | None
    order_id: int | None = Field(description="the id of its order, if it is one")
    at: datetime = Field(
        description="the message's time (for a message seen only by its statuses, the first)"
    )
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    failure_code: int | None
    failure_title: str | None


class CustomerQuery(PageQuery):
    wa_id: str | None = Field(None, max_length=64, pattern=NO_NUL, description="the customer's phone number")
    user_id: str | None = Field(
        None, max_length=128, pattern=NO_NUL, description="the customer's business-scoped user id"
    )


class CustomerOut(Output):
    id: int
    wa_id: str | None = Field(description="the phone number; null while Meta has given only the user id")
    user_id: str | None = Field(description="the business-scoped user id (BSUID), once Meta has given it")
    parent_user_id: str | None
    profile_name: str | None
    username: str | None
    marketing_opt_out: bool = Field(description="the customer asked for no marketing messages")
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


# Analytics


class AnalyticsQuery(Input):
    since: Day | None = Field(None, description="first UTC day (default: the first stored day)")
    until: Day | None = Field(None, description="last UTC day, included (default: the last stored day)")


def _day_model() -> type[BaseModel]:
    """One day's counters: models/analytics.py's COUNTERS, the rates and the revenue, so that a counter added
    there appears here, and in the OpenAPI description, with no edit."""
    fields: dict[str, Any] = {"date": (date, ...)}
    fields.update({counter: (int, ...) for counter in COUNTERS})
    fields.update({rate: (float | None, Field(description="of sent, 4 places")) for rate in analytics.RATES})
    fields[ORDER_REVENUE] = (Money, ...)
    return create_model("AnalyticsDay", **fields)


AnalyticsOut = create_model(
    "AnalyticsOut",
    since=(date | None, ...),
    until=(date | None, ...),
    notes=(list[str], ...),
    days=(list[_day_model()], ...),  # type: ignore[arg-type, misc]
)


def page_of(item: type[BaseModel]) -> type[BaseModel]:
    """`{"data": [...], "next_cursor": ...}`: a named model per item type (OpenAPI names cannot hold [ ])."""
    return create_model(
        f"{item.__name__.removesuffix('Out')}Page",
        data=(list[item], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, Field(description="pass as cursor for the next page; null on the last")),
    )


CatalogPage = page_of(CatalogOut)
ProductPage = page_of(ProductOut)
OrderPage = page_of(OrderOut)
MessagePage = page_of(MessageOut)
CustomerPage = page_of(CustomerOut)
