"""The one boundary where Meta's JSON becomes typed updates; nothing past it reads raw dicts."""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar

from models import INBOUND, OUTBOUND, WhatsAppOrderItem
from models.limits import row_problems
from workers.events import (
    Change,
    Content,
    Envelope,
    Media,
    Message,
    Order,
    OrderItem,
    RawJson,
    Status,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MESSAGES_FIELD = "messages"
ECHOES_FIELD = "smb_message_echoes"


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


def _message(m: RawJson, where: str, *, direction: str, names: dict[str, str]) -> Message:
    wamid, timestamp = _str(m.get("id")), _timestamp(m.get("timestamp"))
    if wamid is None or timestamp is None:
        raise SetAside(MISSING)
    context = _dict(m.get("context"))
    if direction == INBOUND:
        wa_id, user_id = _str(m.get("from")), _str(m.get("from_user_id")) or _str(m.get("user_id"))
    else:
        wa_id, user_id = _str(m.get("to")), _str(m.get("to_user_id")) or _str(m.get("recipient_user_id"))
    return Message(
        wamid=wamid,
        direction=direction,
        message_type=_str(m.get("type")) or "unknown",
        wa_id=wa_id,
        user_id=user_id,
        contact_name=names.get(wa_id or "") or names.get(user_id or ""),
        timestamp=timestamp,
        content=_content(m),
        context_wamid=_str(context.get("id")),
        forwarded=bool(context.get("forwarded") or context.get("frequently_forwarded")),
        raw=m,
        where=where,
    )


def _status(s: RawJson, where: str, *, names: dict[str, str]) -> Status:
    wamid, name, timestamp = _str(s.get("id")), _str(s.get("status")), _timestamp(s.get("timestamp"))
    if wamid is None or name is None or timestamp is None:
        raise SetAside(MISSING)
    code, title, details = _first_error(s.get("errors"))
    wa_id, user_id = _str(s.get("recipient_id")), _str(s.get("recipient_user_id"))
    return Status(
        wamid=wamid,
        status=name,
        timestamp=timestamp,
        recipient_id=wa_id,
        recipient_user_id=user_id,
        contact_name=names.get(wa_id or "") or names.get(user_id or ""),
        error_code=code,
        error_title=title,
        error_details=details,
        conversation_id=_str(_dict(s.get("conversation")).get("id")),
        pricing_category=_str(_dict(s.get("pricing")).get("category")),
        raw=s,
        where=where,
    )


def _contact_names(value: RawJson) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in map(_dict, _list(value.get("contacts"))):
        name = _str(_dict(contact.get("profile")).get("name"))
        for key in ("wa_id", "user_id"):
            if name and _str(contact.get(key)):
                names[str(contact[key])] = name
    return names


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


def _messages_field(change: Change, value: RawJson, names: dict[str, str], where: str) -> None:
    inbound = partial(_message, direction=INBOUND, names=names)
    _collect(change.messages, value.get("messages"), inbound, f"{where}.messages", change.skipped)
    status = partial(_status, names=names)
    _collect(change.statuses, value.get("statuses"), status, f"{where}.statuses", change.skipped)


def _echoes_field(change: Change, value: RawJson, names: dict[str, str], where: str) -> None:
    echo = partial(_message, direction=OUTBOUND, names=names)
    _collect(change.messages, value.get("message_echoes"), echo, f"{where}.message_echoes", change.skipped)


# The change fields that carry updates we store; any other field is acknowledged and left alone.
FIELD_PARSERS: dict[str, Callable[[Change, RawJson, dict[str, str], str], None]] = {
    MESSAGES_FIELD: _messages_field,
    ECHOES_FIELD: _echoes_field,
}


def _change(raw: RawJson, where: str) -> Change:
    field = _str(raw.get("field")) or "unknown"
    value = _dict(raw.get("value"))
    metadata = _dict(value.get("metadata"))
    change = Change(field, _str(metadata.get("phone_number_id")))
    for error in _list(value.get("errors")):
        code, title, details = _first_error([error])
        log.warning("Meta reported a webhook error %s %s: %s", code, title, details, extra={"event": where})
    parse_field = FIELD_PARSERS.get(field)
    if parse_field is None:
        log.info("field %r acknowledged, not stored", field, extra={"event": where})
    else:
        parse_field(change, value, _contact_names(value), where)
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
            envelope.changes.append(_change(_dict(raw_change), f"entry[{e}].changes[{c}]"))
    return envelope
