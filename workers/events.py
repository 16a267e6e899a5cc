"""Typed updates parsed out of a webhook body: everything after parse.py works on these."""

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

RawJson = dict[str, Any]


@dataclass(frozen=True)
class Media:
    id: str | None
    mime_type: str | None
    filename: str | None = None


@dataclass(frozen=True)
class OrderItem:
    position: int  # in the order's product_items, as Meta sent them
    product_retailer_id: str
    quantity: int
    item_price: Decimal
    currency: str | None


@dataclass(frozen=True)
class Order:
    catalog_id: str | None
    note: str | None
    items: tuple[OrderItem, ...]
    set_aside: tuple[str, ...] = ()  # a note for each item that could not be stored

    @property
    def total(self) -> Decimal:
        return sum((item.item_price * item.quantity for item in self.items), Decimal(0))

    @property
    def currency(self) -> str | None:
        return self.items[0].currency if self.items else None


@dataclass(frozen=True)
class Content:
    """The part of a message a person reads or a business acts on, by message type."""

    body: str | None = None
    media: Media | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None
    target_wamid: str | None = None
    order: Order | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None


@dataclass(frozen=True)
class Message:
    """A message the business received (inbound) or sent from the WhatsApp Business app (echo)."""

    wamid: str
    direction: str
    message_type: str
    wa_id: str | None
    user_id: str | None
    contact_name: str | None
    timestamp: datetime
    content: Content
    context_wamid: str | None
    forwarded: bool
    raw: RawJson
    where: str = ""  # its path in the body, for notes


@dataclass(frozen=True)
class Status:
    wamid: str
    status: str
    timestamp: datetime
    recipient_id: str | None  # the customer's phone number (wa_id), when Meta gives it
    recipient_user_id: str | None = None  # the customer's business-scoped user id
    contact_name: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    conversation_id: str | None = None
    pricing_category: str | None = None
    raw: RawJson | None = None
    where: str = ""  # its path in the body, for notes


@dataclass
class Change:
    """One `changes[]` item: the updates for one business phone number."""

    field: str
    phone_number_id: str | None
    messages: list[Message] = dataclasses.field(default_factory=list)
    statuses: list[Status] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def update_count(self) -> int:
        return len(self.messages) + len(self.statuses)


@dataclass
class Envelope:
    """A whole webhook body: its changes and what could not be parsed, in order."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
