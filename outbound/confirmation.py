"""The order confirmation: what it says (the tenant's text, or its template), who it goes to, and the
outbound message row it becomes once Meta returns its wamid."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from string import Template
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.orm import Session

from models import OUTBOUND, WhatsAppMessage, WhatsAppOrder, WhatsAppOrderItem, WhatsAppProduct
from models.db import dialect_of, upsert
from outbound.graph import OutcomeUnknown

# $items (one line per item), $total (with its currency) and $name (the customer's profile name).
DEFAULT_TEXT = "Thank you for your order! We received:\n$items\nTotal: $total"
ACCEPTED = "accepted"  # Meta's messages[].message_status for a send it took; ranks below every status
CENT = Decimal("0.01")
MESSAGES = WhatsAppMessage.__table__
# Filled in from the send when a status webhook made the row first; the status itself is never touched.
FILL_COLUMNS = (
    "message_type",
    "wa_id",
    "user_id",
    "contact_name",
    "body",
    "message_at",
    "context_wamid",
    "biz_opaque_callback_data",
    "raw",
)


class NotConfirmable(Exception):
    """The order cannot be confirmed: not stored, or no address to send to."""


@dataclass(frozen=True)
class Line:
    quantity: int
    name: str
    price: Decimal
    currency: str | None


@dataclass(frozen=True)
class OrderSummary:
    wamid: str
    wa_id: str | None
    user_id: str | None
    contact_name: str | None
    lines: tuple[Line, ...]
    total: Decimal
    currency: str | None


@dataclass(frozen=True)
class Wording:
    """How a tenant confirms orders: a template (name, language) or a text ($items, $total, $name)."""

    template: str | None
    language: str
    text: str | None


def load_order(session: Session, wamid: str) -> OrderSummary | None:
    order = session.scalars(select(WhatsAppOrder).where(WhatsAppOrder.wamid == wamid)).first()
    if order is None:
        return None
    message = session.execute(
        select(MESSAGES.c.wa_id, MESSAGES.c.user_id, MESSAGES.c.contact_name).where(MESSAGES.c.wamid == wamid)
    ).first()
    items = session.execute(
        select(
            WhatsAppOrderItem.quantity,
            func.coalesce(WhatsAppProduct.name, WhatsAppOrderItem.product_retailer_id),
            WhatsAppOrderItem.item_price,
            WhatsAppOrderItem.currency,
        )
        .outerjoin(WhatsAppProduct, WhatsAppProduct.id == WhatsAppOrderItem.product_id)
        .where(WhatsAppOrderItem.order_id == order.id)
        .order_by(WhatsAppOrderItem.position)
    )
    wa_id, user_id, name = message if message is not None else (None, None, None)
    return OrderSummary(
        wamid=wamid,
        wa_id=order.wa_id or wa_id,
        user_id=user_id,
        contact_name=name,
        lines=tuple(Line(q, n, p, c) for q, n, p, c in items),
        total=order.total_amount,
        currency=order.currency,
    )


def money(amount: Decimal, currency: str | None) -> str:
    """19.9900 -> "19.99 USD"; more decimals are kept only when they are not zeros."""
    shown = amount.quantize(CENT) if amount == amount.quantize(CENT) else amount.normalize()
    return f"{shown:f} {currency}" if currency else f"{shown:f}"


def recipient(order: OrderSummary) -> dict[str, str] | None:
    """`to` the phone number when Meta gave one; a business-scoped user id alone goes in `recipient`."""
    if order.wa_id:
        return {"to": order.wa_id}
    if order.user_id:
        return {"recipient": order.user_id}
    return None


def compose(order: OrderSummary, wording: Wording) -> tuple[str, dict[str, Any], str]:
    """(message type, its part of the send's JSON, the text kept in the outbound row's body)."""
    total = money(order.total, order.currency)
    if wording.template:
        # Template parameters may not hold new lines: the items go on one line.
        items = ", ".join(f"{line.quantity} x {line.name}" for line in order.lines)
        parameters = [{"type": "text", "text": items or "-"}, {"type": "text", "text": total}]
        template = {
            "name": wording.template,
            "language": {"code": wording.language},
            "components": [{"type": "body", "parameters": parameters}],
        }
        return "template", {"template": template}, f"[template {wording.template}] {items}; {total}"
    lines = "\n".join(
        f"{line.quantity} x {line.name} ({money(line.price, line.currency)})" for line in order.lines
    )
    text = Template(wording.text or DEFAULT_TEXT).safe_substitute(
        items=lines, total=total, name=order.contact_name or ""
    )
    return "text", {"text": {"body": text, "preview_url": False}}, text


def sent_wamid(answer: dict[str, Any]) -> str:
    """The wamid of the message Meta made of a send: `messages[0].id`."""
    messages = answer.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    if not isinstance(wamid, str) or not wamid:
        # Meta said yes without the id: the message may exist, so this is not an error to resend after.
        raise OutcomeUnknown("the send's answer has no messages[0].id")
    return wamid


@cache
def _outbound_row(dialect: str) -> Insert:
    stmt = upsert(dialect, MESSAGES)
    return stmt.on_conflict_do_update(
        index_elements=["wamid"],
        set_={c: func.coalesce(MESSAGES.c[c], stmt.excluded[c]) for c in FILL_COLUMNS},
    )


def record_sent(
    session: Session,
    tenant_id: int,
    wamid: str,
    order: OrderSummary,
    message_type: str,
    body: str,
    sent_at: datetime,
    answer: dict[str, Any],
    callback: str,
) -> None:
    """The confirmation's outbound message row, keyed by the wamid Meta returned: its statuses attach to
    it (and count once) whether they arrive before or after this row."""
    session.execute(
        _outbound_row(dialect_of(session)),
        {
            "tenant_id": tenant_id,
            "wamid": wamid,
            "direction": OUTBOUND,
            "status": ACCEPTED,
            "message_type": message_type,
            "wa_id": order.wa_id,
            "user_id": order.user_id,
            "contact_name": order.contact_name,
            "body": body,
            "message_at": sent_at,
            "context_wamid": order.wamid,
            "biz_opaque_callback_data": callback,
            "raw": answer,
        },
    )
