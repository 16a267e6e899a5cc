"""The one boundary where Meta's JSON becomes typed updates; nothing past it reads raw dicts."""

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar

from models import HISTORY, INBOUND, LIVE, OUTBOUND, WhatsAppOrderItem
from models.limits import row_problems
from workers.events import (
    AccountEvent,
    AddressBookEntry,
    CallEvent,
    Change,
    Content,
    Customer,
    Envelope,
    IdChange,
    Media,
    Message,
    Order,
    OrderItem,
    Preference,
    RawJson,
    Status,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MESSAGES_FIELD = "messages"
ECHOES_FIELD = "smb_message_echoes"
# Account-level fields: no phone number, routed by the WABA id of their entry.
ACCOUNT_FIELDS = (
    "account_update",
    "message_template_status_update",
    "phone_number_quality_update",
    "business_capability_update",
)
MARKETING = "marketing_messages"
# user_preferences `value` -> the customer opted out of marketing messages.
MARKETING_VALUES = {"stop": True, "resume": False}
# smb_app_state_sync `action` -> the contact is in the business's address book.
ADDRESS_BOOK_ACTIONS = {"add": True, "remove": False}
# A history message's `history_context.status` -> the status its row keeps.
HISTORY_STATUSES = {
    "PENDING": "pending",
    "SENT": "sent",
    "DELIVERED": "delivered",
    "READ": "read",
    "PLAYED": "played",
    "ERROR": "failed",
}
# System messages that change a customer's ids (the new ones in `system.wa_id` / `system.user_id`).
ID_CHANGES = ("user_changed_number", "user_changed_user_id")
BUSINESS_INITIATED = "BUSINESS_INITIATED"


# PostgreSQL text and JSONB cannot hold NUL, and UTF-8 cannot encode a lone surrogate; JSON can escape
# both. Bodies without such an escape (nearly all) are never walked.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# More digits than any column holds: such a number is refused before int() spends time building it.
MAX_DIGITS = 40
MISSING = "no id, status or timestamp"
ORDER_ITEMS = WhatsAppOrderItem.__table__


class NotAWebhook(ValueError):
    """The body is not a JSON object: nothing in it can ever be processed."""


class SetAside(ValueError):
    """One item (message, status, order item) that cannot be stored; its message names the field."""


def _dict(value: Any) -> RawJson:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, Decimal) and not (value.is_finite() and value.adjusted() < MAX_DIGITS):
        return None  # int() of 1e999999999 would build a billion digits
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError, InvalidOperation):
        return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _whole(value: Any) -> int | None:
    """A whole number, as Meta writes counts: an integer or its digits; never a truncated fraction."""
    number = _decimal(value)
    if number is None or not number.is_finite() or number.adjusted() >= MAX_DIGITS:
        return None
    return int(number) if number == number.to_integral_value() else None


def _timestamp(value: Any) -> datetime | None:
    """Unix seconds as a UTC time; None when absent or not a number; SetAside when no calendar holds it."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        return datetime.fromtimestamp(int(value), UTC) if int(value) > 0 else None  # Meta's own form
    seconds = _decimal(value)
    if seconds is None or not seconds.is_finite() or seconds <= 0:
        return None
    try:
        if seconds.adjusted() >= MAX_DIGITS:
            raise OverflowError
        return datetime.fromtimestamp(int(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        raise SetAside(f"timestamp: {str(value)[:40]} is out of range") from None


def _first_error(errors: Any) -> tuple[int | None, str | None, str | None]:
    if not errors:
        return None, None, None
    first = _dict(next(iter(_list(errors)), None))
    details = _str(_dict(first.get("error_data")).get("details")) or _str(first.get("message"))
    return _int(first.get("code")), _str(first.get("title")), details


# Content parsers, one per Meta message type. A type missing here is kept with its raw JSON.


def _text(m: RawJson) -> Content:
    return Content(body=_str(_dict(m.get("text")).get("body")))


def _media(kind: str) -> Callable[[RawJson], Content]:
    def parse(m: RawJson) -> Content:
        obj = _dict(m.get(kind))
        media = Media(_str(obj.get("id")), _str(obj.get("mime_type")), _str(obj.get("filename")))
        return Content(body=_str(obj.get("caption")), media=media)

    return parse


def _location(m: RawJson) -> Content:
    loc = _dict(m.get("location"))
    return Content(
        body=_str(loc.get("name")) or _str(loc.get("address")),
        latitude=_decimal(loc.get("latitude")),
        longitude=_decimal(loc.get("longitude")),
    )


def _contacts(m: RawJson) -> Content:
    names = [_str(_dict(_dict(c).get("name")).get("formatted_name")) for c in _list(m.get("contacts"))]
    return Content(body=", ".join(n for n in names if n) or None)


def _interactive(m: RawJson) -> Content:
    obj = _dict(m.get("interactive"))
    reply = _dict(obj.get(_str(obj.get("type")) or ""))
    return Content(body=_str(reply.get("title")) or _str(reply.get("body")) or _str(reply.get("name")))


def _button(m: RawJson) -> Content:
    button = _dict(m.get("button"))
    return Content(body=_str(button.get("text")) or _str(button.get("payload")))


def _order_item(item: RawJson, position: int) -> OrderItem | str:
    """The item, or why it cannot be stored."""
    retailer_id, quantity, price = (
        _str(item.get("product_retailer_id")),
        _whole(item.get("quantity")),
        _decimal(item.get("item_price")),
    )
    if retailer_id is None:
        return "product_retailer_id: missing"
    if quantity is None:
        return f"quantity: {str(item.get('quantity'))[:40]} is not a whole number"
    if price is None or not price.is_finite():
        return f"item_price: {str(item.get('item_price'))[:40]} is not a finite number"
    parsed = OrderItem(position, retailer_id, quantity, price, _str(item.get("currency")))
    problems = row_problems(ORDER_ITEMS, asdict(parsed))
    return "; ".join(problems) if problems else parsed


def _order(m: RawJson) -> Content:
    obj = _dict(m.get("order"))
    items, unusable = [], []
    for position, raw_item in enumerate(_list(obj.get("product_items"))):
        item = _order_item(_dict(raw_item), position)
        if isinstance(item, OrderItem):
            items.append(item)
        else:
            unusable.append(f"order.product_items[{position}]: set aside: {item}")
    order = Order(_str(obj.get("catalog_id")), _str(obj.get("text")), tuple(items), tuple(unusable))
    return Content(body=order.note, order=order)


def _reaction(m: RawJson) -> Content:
    reaction = _dict(m.get("reaction"))
    # No emoji means the customer removed their reaction.
    return Content(body=_str(reaction.get("emoji")), target_wamid=_str(reaction.get("message_id")))


def _system(m: RawJson) -> Content:
    return Content(body=_str(_dict(m.get("system")).get("body")))


def _edit(m: RawJson) -> Content:
    edit = _dict(m.get("edit"))
    new = _content(_dict(edit.get("message")))
    return Content(body=new.body, media=new.media, target_wamid=_str(edit.get("original_message_id")))


def _revoke(m: RawJson) -> Content:
    return Content(target_wamid=_str(_dict(m.get("revoke")).get("original_message_id")))


CONTENT_PARSERS: dict[str, Callable[[RawJson], Content]] = {
    "text": _text,
    "image": _media("image"),
    "video": _media("video"),
    "audio": _media("audio"),
    "document": _media("document"),
    "sticker": _media("sticker"),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "order": _order,
    "reaction": _reaction,
    "system": _system,
    "edit": _edit,
    "revoke": _revoke,
    "unsupported": lambda m: Content(),
}


def _content(m: RawJson) -> Content:
    message_type = _str(m.get("type")) or "unknown"
    parser = CONTENT_PARSERS.get(message_type)
    if parser is None:
        log.info("message type %r is not parsed; stored with its raw JSON", message_type)
        parser = CONTENT_PARSERS["unsupported"]
    content = parser(m)
    code, title, details = _first_error(m.get("errors"))
    if code is None and title is None and details is None:
        return content
    return replace(content, error_code=code, error_title=title, error_details=details)


@dataclass(frozen=True)
class _Context:
    """What a change's items are read against: its `contacts[]`, its business number, its entry."""

    contacts: dict[str, Customer]  # by wa_id and by user_id
    business_number: str | None  # metadata.display_phone_number
    waba_id: str | None  # entry[].id
    entry_time: Any  # entry[].time, as Meta wrote it

    def name(self, *ids: str | None) -> str | None:
        for i in ids:
            if i and (c := self.contacts.get(i)):
                return c.profile_name
        return None

    def customer(
        self, wa_id: str | None, user_id: str | None, parent: str | None, at: datetime | None
    ) -> Customer | None:
        """The customer these ids name, completed by the `contacts[]` entry that has either id."""
        entry = (self.contacts.get(user_id) if user_id else None) or (
            self.contacts.get(wa_id) if wa_id else None
        )
        if entry is None:
            customer = Customer(wa_id, user_id, parent, seen_at=at)
        else:
            customer = Customer(
                wa_id or entry.wa_id,
                user_id or entry.user_id,
                parent or entry.parent_user_id,
                entry.profile_name,
                entry.username,
                at,
            )
        return customer if customer.known else None


def _context(value: RawJson, entry: RawJson) -> _Context:
    contacts: dict[str, Customer] = {}
    for raw in map(_dict, _list(value.get("contacts"))):
        profile = _dict(raw.get("profile"))
        contact = Customer(
            _str(raw.get("wa_id")),
            _str(raw.get("user_id")),
            _str(raw.get("parent_user_id")),
            _str(profile.get("name")),
            _str(profile.get("username")),
        )
        for key in (contact.wa_id, contact.user_id):
            if key:
                contacts[key] = contact
    business = _str(_dict(value.get("metadata")).get("display_phone_number"))
    return _Context(contacts, business, _str(entry.get("id")), entry.get("time"))


def _message(
    m: RawJson,
    where: str,
    *,
    direction: str,
    ctx: _Context,
    source: str = LIVE,
    thread: str | None = None,
) -> Message:
    wamid, timestamp = _str(m.get("id")), _timestamp(m.get("timestamp"))
    if wamid is None or timestamp is None:
        raise SetAside(MISSING)
    context = _dict(m.get("context"))
    if direction == INBOUND:
        wa_id, user_id = _str(m.get("from")), _str(m.get("from_user_id")) or _str(m.get("user_id"))
        parent = _str(m.get("from_parent_user_id"))
    else:
        wa_id = _str(m.get("to")) or thread
        user_id = _str(m.get("to_user_id")) or _str(m.get("recipient_user_id"))
        parent = _str(m.get("to_parent_user_id"))
    history = _str(_dict(m.get("history_context")).get("status"))
    return Message(
        wamid=wamid,
        direction=direction,
        message_type=_str(m.get("type")) or "unknown",
        wa_id=wa_id,
        user_id=user_id,
        contact_name=ctx.name(wa_id, user_id),
        timestamp=timestamp,
        content=_content(m),
        context_wamid=_str(context.get("id")),
        forwarded=bool(context.get("forwarded") or context.get("frequently_forwarded")),
        raw=m,
        where=where,
        customer=ctx.customer(wa_id, user_id, parent, timestamp),
        source=source,
        history_status=HISTORY_STATUSES.get(history, history.lower())
        if history and source == HISTORY
        else None,
    )


def _status(s: RawJson, where: str, *, ctx: _Context) -> Status:
    wamid, name, timestamp = _str(s.get("id")), _str(s.get("status")), _timestamp(s.get("timestamp"))
    if wamid is None or name is None or timestamp is None:
        raise SetAside(MISSING)
    code, title, details = _first_error(s.get("errors"))
    wa_id, user_id = _str(s.get("recipient_id")), _str(s.get("recipient_user_id"))
    pricing = _dict(s.get("pricing"))
    return Status(
        wamid=wamid,
        status=name,
        timestamp=timestamp,
        recipient_id=wa_id,
        recipient_user_id=user_id,
        contact_name=ctx.name(wa_id, user_id),
        error_code=code,
        error_title=title,
        error_details=details,
        conversation_id=_str(_dict(s.get("conversation")).get("id")),
        pricing_category=_str(pricing.get("category")),
        pricing_model=_str(pricing.get("pricing_model")),
        pricing_type=_str(pricing.get("type")),
        biz_opaque_callback_data=_str(s.get("biz_opaque_callback_data")),
        raw=s,
        where=where,
        customer=ctx.customer(wa_id, user_id, _str(s.get("recipient_parent_user_id")), timestamp),
    )


def _id_change(m: Message) -> IdChange | None:
    """What a user_changed_number / user_changed_user_id system message changes, else None."""
    system = _dict(m.raw.get("system"))
    if _str(system.get("type")) not in ID_CHANGES:
        return None
    new_wa_id, new_user_id = _str(system.get("wa_id")), _str(system.get("user_id"))
    if new_wa_id is None and new_user_id is None:
        return None
    old_user_id = _str(system.get("previous_user_id")) or m.user_id
    parent = _str(system.get("parent_user_id"))
    return IdChange(m.wa_id, new_wa_id, old_user_id, new_user_id, parent, m.timestamp, f"{m.where}.system")


def _collect(
    into: list[T], items: Any, parse_one: Callable[[RawJson, str], T], where: str, skipped: list[str]
) -> None:
    """Parse each item on its own: one that cannot be read is noted and never costs its siblings."""
    for n, item in enumerate(_list(items)):
        at = f"{where}[{n}]"
        try:
            into.append(parse_one(_dict(item), at))
        except SetAside as why:
            skipped.append(f"{at}: set aside: {why}")


def _messages_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    inbound = partial(_message, direction=INBOUND, ctx=ctx)
    _collect(change.messages, value.get("messages"), inbound, f"{where}.messages", change.skipped)
    for n, m in enumerate(change.messages):
        if (id_change := _id_change(m)) is None:
            continue
        change.id_changes.append(id_change)
        if m.customer is None and id_change.old_user_id:  # user_changed_user_id has no `from`
            who = Customer(None, id_change.old_user_id, seen_at=m.timestamp)
            change.messages[n] = replace(m, user_id=id_change.old_user_id, customer=who)
    status = partial(_status, ctx=ctx)
    _collect(change.statuses, value.get("statuses"), status, f"{where}.statuses", change.skipped)


def _echoes_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    echo = partial(_message, direction=OUTBOUND, ctx=ctx)
    _collect(change.messages, value.get("message_echoes"), echo, f"{where}.message_echoes", change.skipped)


def _preference(p: RawJson, where: str, *, ctx: _Context) -> Preference | None:
    """A marketing-messages preference; None for another category (acknowledged, not stored)."""
    at, category = _timestamp(p.get("timestamp")), _str(p.get("category"))
    opted_out = MARKETING_VALUES.get(_str(p.get("value")) or "")
    if category != MARKETING:
        log.info("user preference category %r acknowledged, not stored", category, extra={"event": where})
        return None
    ids = (_str(p.get("wa_id")), _str(p.get("user_id")), _str(p.get("parent_user_id")))
    customer = ctx.customer(*ids, at)
    if at is None or opted_out is None or customer is None:
        raise SetAside("no customer, `value` (stop | resume) or timestamp")
    return Preference(customer, opted_out, at, where)


def _preferences_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    found: list[Preference | None] = []
    read = partial(_preference, ctx=ctx)
    _collect(found, value.get("user_preferences"), read, f"{where}.user_preferences", change.skipped)
    change.preferences += [p for p in found if p is not None]


def _call(c: RawJson, where: str, *, ctx: _Context) -> CallEvent:
    call_id, event, at = _str(c.get("id")), _str(c.get("event")), _timestamp(c.get("timestamp"))
    if call_id is None or event is None or at is None:
        raise SetAside("no id, event or timestamp")
    direction, caller, callee = _str(c.get("direction")), _str(c.get("from")), _str(c.get("to"))
    phone = callee if direction == BUSINESS_INITIATED else caller
    return CallEvent(
        call_id=call_id,
        event=event,
        at=at,
        direction=direction,
        from_number=caller,
        to_number=callee,
        status=_str(c.get("status")),
        start_time=_timestamp(c.get("start_time")),
        end_time=_timestamp(c.get("end_time")),
        duration=_whole(c.get("duration")),
        biz_opaque_callback_data=_str(c.get("biz_opaque_callback_data")),
        customer=ctx.customer(phone, None, None, at),
        where=where,
    )


def _calls_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    _collect(change.calls, value.get("calls"), partial(_call, ctx=ctx), f"{where}.calls", change.skipped)


def _history_message(m: RawJson, where: str, *, ctx: _Context, thread: str | None) -> Message:
    """A past message: sent by the business when it comes from the business's number or has a `to`."""
    outbound = "to" in m or (ctx.business_number is not None and _str(m.get("from")) == ctx.business_number)
    direction = OUTBOUND if outbound else INBOUND
    return _message(m, where, direction=direction, ctx=ctx, source=HISTORY, thread=thread)


def _history_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    """Coexistence chat history: its threads' messages, and the media contents Meta sends separately."""
    for h, chunk in enumerate(map(_dict, _list(value.get("history")))):
        at = f"{where}.history[{h}]"
        for t, thread in enumerate(map(_dict, _list(chunk.get("threads")))):
            read = partial(_history_message, ctx=ctx, thread=_str(thread.get("id")))
            _collect(
                change.messages, thread.get("messages"), read, f"{at}.threads[{t}].messages", change.skipped
            )
        for e, error in enumerate(_list(chunk.get("errors"))):
            change.account_events.append(_account_event(ctx, HISTORY, _dict(error), f"{at}.errors[{e}]"))
    read = partial(_history_message, ctx=ctx, thread=None)
    _collect(change.messages, value.get("messages"), read, f"{where}.messages", change.skipped)


def _address_book_entry(item: RawJson, where: str, *, ctx: _Context) -> AddressBookEntry | None:
    """A contact added or removed; None for another kind of state (acknowledged, not stored)."""
    if _str(item.get("type")) != "contact":
        return None
    contact = _dict(item.get("contact"))
    at = _timestamp(_dict(item.get("metadata")).get("timestamp"))
    present = ADDRESS_BOOK_ACTIONS.get(_str(item.get("action")) or "")
    phone = _str(contact.get("phone_number"))
    if at is None or present is None or phone is None:
        raise SetAside("no phone_number, action (add | remove) or timestamp")
    name = _str(contact.get("full_name")) or _str(contact.get("first_name"))
    return AddressBookEntry(Customer(phone, None, profile_name=name), present, at, where)


def _state_sync_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    found: list[AddressBookEntry | None] = []
    read = partial(_address_book_entry, ctx=ctx)
    _collect(found, value.get("state_sync"), read, f"{where}.state_sync", change.skipped)
    change.address_book += [e for e in found if e is not None]


def _account_event(ctx: _Context, field: str, detail: RawJson, where: str) -> AccountEvent:
    """An account-level event, fingerprinted by what it says: the same event again is the same row."""
    key = json.dumps([ctx.waba_id, field, ctx.entry_time, detail], sort_keys=True, default=str)
    try:
        at = _timestamp(ctx.entry_time)
    except SetAside:
        at = None  # a time no calendar holds: the event is still worth keeping
    event = _str(detail.get("event")) or _str(detail.get("code"))
    return AccountEvent(
        ctx.waba_id, field, event, detail, at, hashlib.sha256(key.encode()).hexdigest(), where
    )


def _account_field(change: Change, value: RawJson, ctx: _Context, where: str) -> None:
    change.account_events.append(_account_event(ctx, change.field, value, where))


# The change fields that carry updates we store; any other field is acknowledged and left alone.
FIELD_PARSERS: dict[str, Callable[[Change, RawJson, _Context, str], None]] = {
    MESSAGES_FIELD: _messages_field,
    ECHOES_FIELD: _echoes_field,
    "user_preferences": _preferences_field,
    "calls": _calls_field,
    HISTORY: _history_field,
    "smb_app_state_sync": _state_sync_field,
    **dict.fromkeys(ACCOUNT_FIELDS, _account_field),
}


def _change(raw: RawJson, entry: RawJson, where: str) -> Change:
    field = _str(raw.get("field")) or "unknown"
    value = _dict(raw.get("value"))
    metadata = _dict(value.get("metadata"))
    ctx = _context(value, entry)
    change = Change(field, _str(metadata.get("phone_number_id")), waba_id=ctx.waba_id)
    for error in _list(value.get("errors")):
        code, title, details = _first_error([error])
        log.warning("Meta reported a webhook error %s %s: %s", code, title, details, extra={"event": where})
    parse_field = FIELD_PARSERS.get(field)
    if parse_field is None:
        log.info("field %r acknowledged, not stored", field, extra={"event": where})
    else:
        parse_field(change, value, ctx, where)
    return change


def _scrub(value: Any, where: str, replaced: list[str]) -> Any:
    """value with NUL and lone surrogates replaced in every string and key; each changed path noted."""
    if isinstance(value, str):
        clean = _UNSTORABLE_CHARACTER.sub(REPLACEMENT, value)
        if clean != value:
            replaced.append(where or "(the body)")
        return clean
    if isinstance(value, list):
        return [_scrub(item, f"{where}[{n}]", replaced) for n, item in enumerate(value)]
    if isinstance(value, dict):
        scrubbed = {}
        for key, item in value.items():
            clean_key = _scrub(key, f"{where}.(a key)" if where else "(a key)", replaced)
            scrubbed[clean_key] = _scrub(item, f"{where}.{clean_key}" if where else clean_key, replaced)
        return scrubbed
    return value


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _load(body: bytes) -> tuple[RawJson, list[str]]:
    """The body's JSON object, storable everywhere, and a note for each string that had to be changed."""
    try:
        # Decimal for every fractional number: prices must never pass through a float.
        document = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: a 5,000-digit integer
        raise NotAWebhook(f"not JSON: {type(error).__name__}: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise NotAWebhook(f"a JSON {type(document).__name__}, not an object")
    if not _UNSTORABLE_ESCAPE.search(body):
        return document, []
    replaced: list[str] = []
    try:
        document = _scrub(document, "", replaced)
    except RecursionError:
        raise NotAWebhook("nested too deeply to store") from None
    return document, [f"{path}: NUL or lone surrogate replaced with U+FFFD" for path in replaced]


def parse(body: bytes) -> Envelope:
    """Parse a webhook body; raise NotAWebhook only when it is not a JSON object at all."""
    document, replaced = _load(body)
    envelope = Envelope(skipped=replaced)
    entries = document.get("entry")
    if not isinstance(entries, list):
        envelope.skipped.append("entry: missing or not a list")
        return envelope
    for e, entry in enumerate(map(_dict, entries)):
        for c, raw_change in enumerate(_list(entry.get("changes"))):
            envelope.changes.append(_change(_dict(raw_change), entry, f"entry[{e}].changes[{c}]"))
    return envelope
