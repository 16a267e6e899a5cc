"""Whatever a body holds, processing never fails it: the bad item is set aside, its siblings are stored.

Bodies go on the queue as the web app would put them there (the web app's own limits, such as nesting,
are tested in test_webhook.py; the worker must be safe without them) and a real worker drains them.
"""

import copy
import json
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.job import JobStatus
from sqlalchemy import func, select

from models import (
    WebhookEvent,
    WhatsAppAnalytics,
    WhatsAppCall,
    WhatsAppMessage,
    WhatsAppMessageStatus,
    WhatsAppOrder,
    WhatsAppPricingDaily,
)
from models.analytics import CALL_SECONDS, CALLS_COUNT, MESSAGES_RECEIVED, ORDER_REVENUE, ORDERS_COUNT
from models.db import Database
from models.statuses import STATUS_RULES
from runtime.inbox import body_digest
from tests.conftest import CATALOG_A, PAYLOADS, TENANT_A, Pipeline
from workers.jobs import job_data

CUSTOMER = "15551230099"
TIMESTAMP = "1795338000"  # 2026-11-22 09:00 UTC
Path = tuple[str | int, ...]
COUNTED = (
    MESSAGES_RECEIVED,
    *(rule.counter for rule in STATUS_RULES),
    ORDERS_COUNT,
    ORDER_REVENUE,
    CALLS_COUNT,
    CALL_SECONDS,
)
PRICED = "priced"
CENTS = Decimal("0.0001")  # SQLite sums money as floats (README: exact on PostgreSQL only)
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def envelope(updates: dict[str, list[Any]]) -> dict[str, Any]:
    """A body for tenant A: inbound messages and statuses in one change, echoes in another."""
    metadata = {"display_phone_number": "15550000001", "phone_number_id": TENANT_A.phone_number_id}
    contacts = [{"profile": {"name": "Prop"}, "wa_id": CUSTOMER}]
    fields = {
        "messages": ("messages", "statuses"),
        "smb_message_echoes": ("message_echoes",),
        "calls": ("calls",),
        "user_preferences": ("user_preferences",),
    }
    changes = [
        {
            "value": {
                "messaging_product": "whatsapp",
                "metadata": metadata,
                "contacts": contacts,
                **{kind: updates[kind] for kind in kinds},
            },
            "field": field,
        }
        for field, kinds in fields.items()
    ]
    return {"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": changes}]}


def updates(tag: str) -> dict[str, list[Any]]:
    """One valid item of each kind the parser reads deeply, with wamids unique to tag."""

    def inbound(kind: str, content: dict[str, Any]) -> dict[str, Any]:
        wamid = f"wamid.PROP-{tag}-{kind}"
        return {"from": CUSTOMER, "id": wamid, "timestamp": TIMESTAMP, "type": kind, **content}

    item = {"product_retailer_id": "SKU-TEE", "quantity": 2, "item_price": 19.99, "currency": "USD"}
    messages = [
        inbound("text", {"text": {"body": "hello"}, "context": {"from": "15550000001", "id": "wamid.CTX"}}),
        inbound("order", {"order": {"catalog_id": CATALOG_A, "text": "note", "product_items": [item]}}),
        inbound("image", {"image": {"id": "1234", "mime_type": "image/jpeg", "caption": "a caption"}}),
        inbound("location", {"location": {"latitude": 52.37, "longitude": 4.89, "name": "Dam"}}),
        inbound("reaction", {"reaction": {"message_id": "wamid.CTX", "emoji": "x"}}),
    ]
    statuses = [
        {
            "id": f"wamid.PROP-{tag}-out-sent",
            "status": "sent",
            "timestamp": TIMESTAMP,
            "recipient_id": CUSTOMER,
            "conversation": {"id": "conversation-1", "origin": {"type": "service"}},
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"},
        },
        {
            "id": f"wamid.PROP-{tag}-out-failed",
            "status": "failed",
            "timestamp": TIMESTAMP,
            "recipient_id": CUSTOMER,
            "errors": [{"code": 131026, "title": "Undeliverable", "error_data": {"details": "d"}}],
        },
    ]
    echo = {
        "from": "15550000001",
        "to": "",  # a customer who hides their number: only the business-scoped id
        "to_user_id": "US.13491208655302741918",
        "id": f"wamid.PROP-{tag}-echo",
        "timestamp": TIMESTAMP,
        "type": "text",
        "text": {"body": "sent from the app"},
    }
    call = {
        "id": f"wacid.PROP-{tag}",
        "from": CUSTOMER,
        "to": "15550000001",
        "event": "terminate",
        "direction": "USER_INITIATED",
        "timestamp": TIMESTAMP,
        "status": "COMPLETED",
        "start_time": TIMESTAMP,
        "end_time": TIMESTAMP,
        "duration": 30,
    }
    preference = {
        "wa_id": CUSTOMER,
        "detail": "User requested to stop marketing messages",
        "category": "marketing_messages",
        "value": "stop",
        "timestamp": int(TIMESTAMP),
    }
    return {
        "messages": messages,
        "statuses": statuses,
        "message_echoes": [echo],
        "calls": [call],
        "user_preferences": [preference],
    }


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every key and index under value, depth first."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def set_at(document: Any, path: Path, value: Any) -> None:
    *parents, last = path
    for key in parents:
        document = document[key]
    document[last] = value


def delete_at(document: Any, path: Path) -> None:
    *parents, last = path
    for key in parents:
        document = document[key]
    del document[last]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


any_text = st.text(st.characters(exclude_categories=()), max_size=60)
long_text = st.integers(60, 20_000).map(lambda n: "w" * n)  # past every String(n) column
huge = st.sampled_from([10**4000, 10**30, 2**31, -(2**31) - 1, -(2**63), 1e300, 1e-300, 5e-324])
numbers = st.integers(min_value=-(10**60), max_value=10**60) | st.floats(
    allow_nan=False, allow_infinity=False
)
number_strings = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e999999999", "99999999999999999999", "0x10", "١٢٣"]
)
leaves = (
    st.none()
    | st.booleans()
    | numbers
    | huge
    | any_text
    | long_text
    | number_strings
    | st.builds(nested, st.integers(1, 400))
)
containers = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
# A plain recursive strategy draws a list or a dict nine times in ten; scalars are where limits bite.
json_values = leaves | containers


def process(pipeline: Pipeline, document: dict[str, Any]) -> bytes:
    """Queue the document as one body, drain it with a worker; the job must finish, the body not fail."""
    # ensure_ascii: NUL and lone surrogates can only travel as \u escapes, as they would from Meta.
    body = json.dumps(document, ensure_ascii=True).encode()
    (job,) = pipeline.services.queue.enqueue_many([job_data([body])])
    pipeline.drain()
    assert job.get_status(refresh=True) == JobStatus.FINISHED, "the body failed and was sent back for a retry"
    with pipeline.services.db.session() as session:
        event = session.scalars(select(WebhookEvent).where(WebhookEvent.sha256 == body_digest(body))).one()
        assert event.outcome in {"processed", "partial", "ignored"}
        assert event.error is None
    return body


def assert_counters_equal_rows(db: Database) -> None:
    """Every counter, summed over all days, equals the stored rows it counts."""
    with db.session() as session:
        totals = session.execute(
            select(*(func.coalesce(func.sum(WhatsAppAnalytics.__table__.c[c]), 0) for c in COUNTED))
        ).one()
        rows = {
            MESSAGES_RECEIVED: session.scalar(
                select(func.count()).where(WhatsAppMessage.direction == "inbound")
            ),
            **{
                rule.counter: session.scalar(
                    select(func.count()).where(WhatsAppMessageStatus.status == rule.status)
                )
                for rule in STATUS_RULES
            },
            ORDERS_COUNT: session.scalar(select(func.count()).select_from(WhatsAppOrder)),
            ORDER_REVENUE: session.scalar(select(func.coalesce(func.sum(WhatsAppOrder.total_amount), 0))),
            CALLS_COUNT: session.scalar(select(func.count()).where(WhatsAppCall.terminated_at.is_not(None))),
            CALL_SECONDS: session.scalar(
                select(func.coalesce(func.sum(WhatsAppCall.duration), 0)).where(
                    WhatsAppCall.terminated_at.is_not(None)
                )
            ),
            PRICED: session.scalar(select(func.count()).where(WhatsAppMessage.priced_at.is_not(None))),
        }
        priced = session.scalar(select(func.coalesce(func.sum(WhatsAppPricingDaily.messages), 0)))
    counted = dict(zip(COUNTED, totals, strict=True)) | {PRICED: priced}
    assert {c: Decimal(str(t)).quantize(CENTS) for c, t in counted.items()} == {
        c: Decimal(str(rows[c])).quantize(CENTS) for c in counted
    }


Stored = tuple[set[str], set[tuple[str, str]], set[str]]


def stored(db: Database, items: dict[str, list[Any]]) -> Stored:
    """Which of the items' messages (inbound and echoes), status sightings and calls the database holds."""
    wamids, sightings, calls = expected(items)
    with db.session() as session:
        found = set(session.scalars(select(WhatsAppMessage.wamid).where(WhatsAppMessage.wamid.in_(wamids))))
        seen = session.execute(
            select(WhatsAppMessageStatus.wamid, WhatsAppMessageStatus.status).where(
                WhatsAppMessageStatus.wamid.in_({w for w, _ in sightings})
            )
        )
        called = set(session.scalars(select(WhatsAppCall.call_id).where(WhatsAppCall.call_id.in_(calls))))
        return found, {(w, s) for w, s in seen}, called


def expected(items: dict[str, list[Any]]) -> Stored:
    return (
        {m["id"] for m in items["messages"] + items["message_echoes"]},
        {(s["id"], s["status"]) for s in items["statuses"]},
        {c["id"] for c in items["calls"]},
    )


@EXAMPLES
@given(data=st.data(), value=json_values)
def test_any_value_in_any_field_of_one_item_never_costs_its_siblings(
    pipeline: Pipeline, data: st.DataObject, value: Any
) -> None:
    items = updates(uuid.uuid4().hex[:12])
    kind = data.draw(st.sampled_from(sorted(items)), label="kind")
    victim = data.draw(st.integers(0, len(items[kind]) - 1), label="victim")
    where = data.draw(st.sampled_from([(), *paths(items[kind][victim])]), label="field")
    siblings = {k: [item for n, item in enumerate(v) if (k, n) != (kind, victim)] for k, v in items.items()}
    if where:
        set_at(items[kind][victim], where, value)
    else:
        items[kind][victim] = value  # the whole item replaced
    process(pipeline, envelope(items))
    assert stored(pipeline.services.db, siblings) == expected(siblings)
    assert_counters_equal_rows(pipeline.services.db)


def test_an_echo_whose_user_id_fits_its_message_but_not_its_sighting_is_set_aside(pipeline: Pipeline) -> None:
    items = updates(uuid.uuid4().hex[:12])
    items["message_echoes"][0]["to_user_id"] = "U" * 100  # whatsapp_messages.user_id holds 128, a sighting 64
    siblings = {**items, "message_echoes": []}
    process(pipeline, envelope(items))
    assert stored(pipeline.services.db, items) == expected(siblings)
    with pipeline.services.db.session() as session:
        (notes,) = session.scalars(select(WebhookEvent.notes)).all()
    assert notes == [
        "entry[0].changes[1].message_echoes[0]: set aside: recipient_id: 100 characters, at most 64 fit"
    ]


def finite_or_text(number: str) -> float | str:
    """A number too large for a float stays text: json.dumps would write Infinity, which is not JSON."""
    value = float(number)
    return value if math.isfinite(value) else number


SAMPLES = {
    p.name: json.loads(p.read_bytes(), parse_float=finite_or_text) for p in sorted(PAYLOADS.glob("*.json"))
}


@EXAMPLES
@given(data=st.data(), name=st.sampled_from(sorted(SAMPLES)))
def test_every_sample_payload_survives_random_field_deletions(
    pipeline: Pipeline, data: st.DataObject, name: str
) -> None:
    document = copy.deepcopy(SAMPLES[name])
    for _ in range(data.draw(st.integers(1, 5), label="deletions")):
        if not (every := list(paths(document))):
            break
        delete_at(document, data.draw(st.sampled_from(every), label="deleted"))
    process(pipeline, document)
    assert_counters_equal_rows(pipeline.services.db)
