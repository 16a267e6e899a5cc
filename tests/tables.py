"""What the tables hold, in plain comparable form: for expectation files and whole-run comparisons."""

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from models import (
    COUNTERS,
    WebhookEvent,
    WhatsAppAnalytics,
    WhatsAppBusinessSettings,
    WhatsAppMessage,
    WhatsAppOrder,
    WhatsAppOrderItem,
)
from models.db import Database

TENANT_LABELS = {"100000000000001": "A", "100000000000002": "B"}
MESSAGE_FIELDS = (
    "direction",
    "message_type",
    "status",
    "wa_id",
    "body",
    "context_wamid",
    "target_wamid",
    "failure_code",
    "failure_title",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
)


def _labels(db: Database) -> dict[int, str]:
    with db.session() as session:
        rows = session.execute(
            select(WhatsAppBusinessSettings.tenant_id, WhatsAppBusinessSettings.phone_number_id)
        )
        return {tenant_id: TENANT_LABELS.get(pnid, pnid) for tenant_id, pnid in rows}


def messages(db: Database) -> dict[str, dict[str, Any]]:
    labels = _labels(db)
    with db.session() as session:
        rows = session.scalars(select(WhatsAppMessage)).all()
        return {
            m.wamid: {
                "tenant": labels[m.tenant_id],
                **{f: getattr(m, f) for f in MESSAGE_FIELDS},
                "order": m.order_id is not None,
            }
            for m in rows
        }


def orders(db: Database) -> dict[str, dict[str, Any]]:
    labels = _labels(db)
    with db.session() as session:
        result = {}
        for o in session.scalars(select(WhatsAppOrder)).all():
            items = session.scalars(
                select(WhatsAppOrderItem)
                .where(WhatsAppOrderItem.order_id == o.id)
                .order_by(WhatsAppOrderItem.position)
            ).all()
            result[o.wamid] = {
                "tenant": labels[o.tenant_id],
                "wa_id": o.wa_id,
                "catalog_id": o.catalog_id,
                "currency": o.currency,
                "total_amount": Decimal(o.total_amount),
                "note": o.note,
                "items": [
                    {
                        "product_retailer_id": i.product_retailer_id,
                        "quantity": i.quantity,
                        "item_price": Decimal(i.item_price),
                        "currency": i.currency,
                        "known_product": i.product_id is not None,
                    }
                    for i in items
                ],
            }
        return result


def analytics(db: Database) -> dict[str, dict[str, dict[str, Any]]]:
    """tenant label -> ISO date -> non-zero counters (order_revenue as Decimal)."""
    labels = _labels(db)
    result: dict[str, dict[str, dict[str, Any]]] = {}
    with db.session() as session:
        for row in session.scalars(select(WhatsAppAnalytics)).all():
            counters: dict[str, Any] = {c: getattr(row, c) for c in COUNTERS if getattr(row, c)}
            if row.order_revenue:
                counters["order_revenue"] = Decimal(row.order_revenue).normalize()
            if counters:
                result.setdefault(labels[row.tenant_id], {})[row.date.isoformat()] = counters
    return result


def outcomes(db: Database) -> dict[str, str | None]:
    with db.session() as session:
        return dict(session.execute(select(WebhookEvent.sha256, WebhookEvent.outcome)).all())


def snapshot(db: Database) -> dict[str, Any]:
    """Everything a business reads, without surrogate ids or write times."""
    return {"messages": messages(db), "orders": orders(db), "analytics": analytics(db)}


def expected_analytics(expected: dict[str, Any]) -> dict[str, Any]:
    return {
        tenant: {
            day: {k: Decimal(v).normalize() if k == "order_revenue" else v for k, v in counters.items()}
            for day, counters in days.items()
        }
        for tenant, days in expected.get("analytics", {}).items()
    }


def assert_state(db: Database, expected: dict[str, Any]) -> None:
    """The tables hold exactly what an expectation file says (only the keys it gives are compared)."""
    stored = messages(db)
    assert set(stored) == {m["wamid"] for m in expected["messages"]}
    for want in expected["messages"]:
        got = stored[want["wamid"]]
        for key, value in want.items():
            if key != "wamid":
                assert got[key] == value, f"{want['wamid']}.{key}: {got[key]!r} != {value!r}"
    stored_orders = orders(db)
    assert set(stored_orders) == {o["wamid"] for o in expected.get("orders", [])}
    for want in expected.get("orders", []):
        got = stored_orders[want["wamid"]]
        for key, value in want.items():
            if key == "total_amount":
                assert got[key] == Decimal(value)
            elif key == "items":
                assert len(got["items"]) == len(value)
                for got_item, want_item in zip(got["items"], value, strict=True):
                    for k, v in want_item.items():
                        assert got_item[k] == (Decimal(v) if k == "item_price" else v), f"{want['wamid']} {k}"
            elif key != "wamid":
                assert got[key] == value, f"order {want['wamid']}.{key}: {got[key]!r} != {value!r}"
    assert analytics(db) == expected_analytics(expected)
