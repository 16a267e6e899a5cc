"""Typed updates parsed out of a webhook body: everything after parse.py works on these."""

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from models.messages import LIVE

RawJson = dict[str, Any]


@dataclass(frozen=True)
class Customer:
    """What one event says about the customer it involves: their ids, profile, and when."""

    wa_id: str | None  # phone number
    user_id: str | None  # business-scoped user id
    parent_user_id: str | None = None
    profile_name: str | None = None
    username: str | None = None
    seen_at: datetime | None = None  # the event's own time; None for an address-book entry

    @property
    def known(self) -> bool:
        return bool(self.wa_id or self.user_id)


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
    customer: Customer | None = None
    source: str = LIVE  # `history`: imported from the WhatsApp Business app, never counted
    history_status: str | None = None  # an imported message's last status, as the app knew it


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
    pricing_model: str | None = None
    pricing_type: str | None = None
    biz_opaque_callback_data: str | None = None
    raw: RawJson | None = None
    where: str = ""  # its path in the body, for notes
    customer: Customer | None = None


@dataclass(frozen=True)
class IdChange:
    """A system message saying a customer's phone number or business-scoped user id changed."""

    old_wa_id: str | None
    new_wa_id: str | None
    old_user_id: str | None
    new_user_id: str | None
    new_parent_user_id: str | None
    at: datetime
    where: str = ""


@dataclass(frozen=True)
class Preference:
    """A customer stopping (opted_out) or resuming marketing messages (`user_preferences`)."""

    customer: Customer
    opted_out: bool
    at: datetime
    where: str = ""


@dataclass(frozen=True)
class AddressBookEntry:
    """A contact the business added to (or removed from) its WhatsApp Business app (`smb_app_state_sync`)."""

    customer: Customer
    present: bool
    at: datetime
    where: str = ""


@dataclass(frozen=True)
class CallEvent:
    """One `calls[]` item: a call connecting or terminating."""

    call_id: str
    event: str
    at: datetime
    direction: str | None
    from_number: str | None
    to_number: str | None
    status: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    biz_opaque_callback_data: str | None = None
    customer: Customer | None = None
    where: str = ""


@dataclass(frozen=True)
class AccountEvent:
    """An account-level change (template, account, quality, capability), routed by its WABA id."""

    waba_id: str | None
    field: str
    event: str | None
    detail: RawJson
    at: datetime | None
    fingerprint: str
    where: str = ""


@dataclass
class Change:
    """One `changes[]` item: the updates for one business phone number."""

    field: str
    phone_number_id: str | None
    messages: list[Message] = dataclasses.field(default_factory=list)
    statuses: list[Status] = dataclasses.field(default_factory=list)
    id_changes: list[IdChange] = dataclasses.field(default_factory=list)
    preferences: list[Preference] = dataclasses.field(default_factory=list)
    address_book: list[AddressBookEntry] = dataclasses.field(default_factory=list)
    calls: list[CallEvent] = dataclasses.field(default_factory=list)
    account_events: list[AccountEvent] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    waba_id: str | None = None  # entry[].id: routes account events, which carry no phone number

    @property
    def update_count(self) -> int:
        """Updates for a phone number's tenant (account events are routed by WABA instead)."""
        return (
            len(self.messages)
            + len(self.statuses)
            + len(self.preferences)
            + len(self.address_book)
            + len(self.calls)
        )

    @property
    def item_count(self) -> int:
        """Every update it holds, account events included: what a body's `applied` is counted against."""
        return self.update_count + len(self.account_events)


@dataclass
class Envelope:
    """A whole webhook body: its changes and what could not be parsed, in order."""

    changes: list[Change] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
