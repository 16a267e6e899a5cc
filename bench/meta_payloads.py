"""Realistic, distinct WhatsApp Cloud API webhook bodies for the benchmarks, shaped like tests/payloads.

Every wamid is unique to its message; an outbound message's statuses (sent, delivered, read, failed)
share its wamid and arrive spread over several bodies, sometimes out of order, as Meta sends them.
Bodies are compact JSON with non-ASCII escaped, the form Meta posts. With business-scoped ids (the
2026 shape) every contact carries a `user_id` and status changes carry their recipients' contacts,
which pywa requires.
"""

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

PHONE_NUMBER_ID = "100000000000001"  # tenant A of tests/payloads
DISPLAY_PHONE_NUMBER = "15550000001"
WABA_ID = "200000000000001"
CATALOG_ID = "300000000000001"  # tests/fixtures/catalog_a.csv
START = 1794484800  # 2026-11-12 12:00 UTC: the events span two UTC dates
WINDOW_SECONDS = 36 * 3600
UPDATES_PER_CHANGE = 50

Json = dict[str, Any]

NAMES = ("Maya Okafor", "Priya N", "Noah B", "Elena S", "Ada", "Bo", "Cy", "Dee", "Eli", "Jonas W")
PHRASES = (
    "Hi! Is the blue one still in stock?",
    "Yes, Thursday works for me. See you then!",
    "Can I change the delivery address for my order?",
    "Thanks, received it today.",
    "What time do you open on Saturday?",
    "Please call me back when you can.",
)
# (retailer id, price as Meta writes it): catalog_a.csv products, then ones the catalog lacks.
PRODUCTS = (
    ("SKU-TEE", "19.99"),
    ("SKU-MUG", "8.5"),
    ("SKU-CAP", "12"),
    ("SKU-HOODIE", "49"),
    ("SKU-GIFT-CARD", "9.99"),
    ("SKU-STICKER", "0.1"),
    ("SKU-PIN", "1.15"),
)
MESSAGE_TYPES = {
    "text": 40,
    "image": 10,
    "reaction": 8,
    "interactive": 8,
    "order": 7,
    "audio": 6,
    "button": 5,
    "document": 5,
    "location": 4,
    "video": 4,
    "sticker": 3,
}
# An outbound message's statuses as Meta reports them (delivered is skipped when read at once).
LIFECYCLES = {
    ("sent", "delivered", "read"): 50,
    ("sent", "delivered"): 25,
    ("sent", "read"): 10,
    ("sent", "failed"): 10,
    ("failed",): 5,
}


@dataclass
class Expected:
    """What processing every body of a corpus must leave in the database."""

    bodies: int = 0
    messages: int = 0
    statuses: int = 0
    outbound_wamids: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    order_revenue: Decimal = Decimal(0)

    @property
    def events(self) -> int:
        return self.messages + self.statuses

    @property
    def message_rows(self) -> int:
        """Inbound messages plus the outbound messages known only by their statuses."""
        return self.messages + self.outbound_wamids


@dataclass
class Corpus:
    bodies: list[bytes]
    expected: Expected
    single_update_bodies: int
    batch_sizes: list[int]


def encode(document: Json) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()


class Generator:
    """Builds messages and statuses; wamids carry the run's tag and a serial number."""

    def __init__(self, seed: int, tag: str = "BENCH", business_scoped_ids: bool = False) -> None:
        self.random = random.Random(seed)
        self.tag = tag
        self.business_scoped_ids = business_scoped_ids
        self.serial = 0
        self.outbound: list[str] = []  # wamids our messages were sent with: targets of replies

    def wamid(self) -> str:
        self.serial += 1
        return f"wamid.HBgL{self.tag}-{self.serial:09d}"

    def customer(self) -> tuple[str, str]:
        n = self.random.randrange(5000)
        return f"1555123{n:04d}", NAMES[n % len(NAMES)]

    def contact(self, wa_id: str, name: str) -> Json:
        contact: Json = {"profile": {"name": name}, "wa_id": wa_id}
        if self.business_scoped_ids:
            contact["user_id"] = business_scoped_id(wa_id)
        return contact

    # Inbound messages

    def message(self, when: int, message_type: str | None = None) -> tuple[Json, Json, Decimal | None]:
        """(message, its contact, the order total when it is an order)."""
        if message_type is None:
            types, weights = zip(*MESSAGE_TYPES.items(), strict=True)
            message_type = self.random.choices(types, weights)[0]
        wa_id, name = self.customer()
        message: Json = {"from": wa_id, "id": self.wamid(), "timestamp": str(when), "type": message_type}
        total = None
        if message_type == "order":
            message["order"], total = self._order()
        else:
            message[message_type] = self._content(message_type)
        if message_type in ("text", "interactive", "button") and self.outbound:
            message["context"] = {"from": DISPLAY_PHONE_NUMBER, "id": self.random.choice(self.outbound)}
        return message, self.contact(wa_id, name), total

    def _content(self, message_type: str) -> Json:
        n = self.serial
        media = {
            "mime_type": "image/jpeg",
            "sha256": f"YmVuY2htYXJrIG1lZGlhIHNoYTI1NiB7{n:012d}=",
            "id": f"11{n:014d}",
            "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=11{n:014d}&ext=jpeg",
        }
        match message_type:
            case "text":
                return {"body": f"{self.random.choice(PHRASES)} (#{n})"}
            case "image":
                return {**media, "caption": "Is this the one?"}
            case "video":
                return {**media, "mime_type": "video/mp4"}
            case "audio":
                return {**media, "mime_type": "audio/ogg; codecs=opus", "voice": True}
            case "sticker":
                return {**media, "mime_type": "image/webp", "animated": False}
            case "document":
                return {**media, "mime_type": "application/pdf", "filename": f"invoice-{n}.pdf"}
            case "location":
                return {"latitude": 51.5033635, "longitude": -0.1276248, "name": "Pickup point 7"}
            case "interactive":
                return {"type": "button_reply", "button_reply": {"id": "track", "title": "Track order"}}
            case "button":
                return {"payload": "YES", "text": "Yes"}
            case "reaction":
                target = self.random.choice(self.outbound) if self.outbound else self.wamid()
                return {"message_id": target, "emoji": "\u2764\ufe0f"}
        raise ValueError(f"no content for {message_type}")

    def _order(self) -> tuple[Json, Decimal]:
        items = []
        total = Decimal(0)
        for retailer_id, price in self.random.sample(PRODUCTS, self.random.randint(1, 3)):
            quantity = self.random.randint(1, 3)
            total += Decimal(price) * quantity
            items.append(
                {
                    "product_retailer_id": retailer_id,
                    "quantity": quantity,
                    "item_price": int(price) if price.isdigit() else float(price),
                    "currency": "USD",
                }
            )
        return {"catalog_id": CATALOG_ID, "product_items": items}, total

    # Statuses of outbound messages

    def lifecycle(self, sent_at: int) -> list[tuple[int, Json]]:
        """The statuses of one outbound message, with their own timestamps."""
        wamid = self.wamid()
        self.outbound.append(wamid)
        recipient, _ = self.customer()
        names, weights = zip(*LIFECYCLES.items(), strict=True)
        statuses = []
        when = sent_at
        for name in self.random.choices(names, weights)[0]:
            statuses.append((when, self.status(wamid, name, when, recipient)))
            when += self.random.randint(1, 600)
        return statuses

    def status(self, wamid: str, name: str, when: int, recipient: str) -> Json:
        status: Json = {"id": wamid, "status": name, "timestamp": str(when), "recipient_id": recipient}
        if self.business_scoped_ids:
            status["recipient_user_id"] = business_scoped_id(recipient)
        if name == "failed":
            status["errors"] = [
                {
                    "code": 131026,
                    "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": {"details": "The recipient has not accepted the latest Terms of Service."},
                    "href": "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/",
                }
            ]
            return status
        status["conversation"] = {
            "id": f"{self.random.getrandbits(128):032x}",
            "expiration_timestamp": str(when + 86400),
            "origin": {"type": "utility"},
        }
        status["pricing"] = {
            "billable": True,
            "pricing_model": "PMP",
            "type": "regular",
            "category": "utility",
        }
        return status


def business_scoped_id(wa_id: str) -> str:
    """A stable, made-up business-scoped user id (`CC.<digits>`) for a customer's number."""
    return f"US.{int(wa_id) * 7919 % 10**20:020d}"


def envelope(changes: list[Json]) -> Json:
    return {"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": changes}]}


def change(messages: list[Json], contacts: list[Json], statuses: list[Json]) -> Json:
    value: Json = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
    }
    # The 2026 shape names each status's recipient in contacts too.
    recipients = [
        {"wa_id": s["recipient_id"], "user_id": s["recipient_user_id"]}
        for s in statuses
        if "recipient_user_id" in s
    ]
    if contacts or recipients:
        value["contacts"] = list({c["wa_id"]: c for c in [*contacts, *recipients]}.values())
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {"value": value, "field": "messages"}


# The worker benchmark's corpus


def worker_corpus(
    count: int, seed: int = 1, single_share: float = 0.7, business_scoped_ids: bool = False
) -> Corpus:
    """count bodies: single_share carry one update, the rest batches of 10 to 100 mixed updates."""
    generator = Generator(seed, business_scoped_ids=business_scoped_ids)
    rng = generator.random
    sizes = [1 if rng.random() < single_share else rng.randint(10, 100) for _ in range(count)]
    # Inbound messages are 45% of single-update bodies and 30% of batched updates.
    kinds = [
        ["message" if rng.random() < (0.45 if n == 1 else 0.3) else "status" for _ in range(n)] for n in sizes
    ]
    expected = Expected(bodies=count)
    statuses = _status_stream(generator, sum(k.count("status") for k in kinds), expected)
    bodies = []
    for index, body_kinds in enumerate(kinds):
        when = START + WINDOW_SECONDS * index // count
        bodies.append(encode(_body(generator, body_kinds, when, statuses, expected)))
    batches = [n for n in sizes if n > 1]
    return Corpus(bodies, expected, single_update_bodies=count - len(batches), batch_sizes=batches)


def single_message_corpus(count: int, seed: int = 1, business_scoped_ids: bool = False) -> Corpus:
    """count bodies of one inbound text message each, for tenant A: Meta's most common POST."""
    generator = Generator(seed, tag="SINGLE", business_scoped_ids=business_scoped_ids)
    bodies = []
    for index in range(count):
        message, contact, _ = generator.message(START + WINDOW_SECONDS * index // count, "text")
        bodies.append(encode(envelope([change([message], [contact], [])])))
    expected = Expected(bodies=count, messages=count)
    return Corpus(bodies, expected, single_update_bodies=count, batch_sizes=[])


def _status_stream(generator: Generator, count: int, expected: Expected) -> Iterator[Json]:
    """count statuses of whole lifecycles, in time order with some neighbours swapped (late arrivals)."""
    events: list[tuple[int, Json]] = []
    while len(events) < count:
        sent_at = START + generator.random.randrange(WINDOW_SECONDS)
        events += generator.lifecycle(sent_at)
    events = sorted(events[:count], key=lambda e: e[0])
    for i in range(len(events) - 1):
        if generator.random.random() < 0.1:
            events[i], events[i + 1] = events[i + 1], events[i]
    expected.statuses = count
    expected.by_status = Counter(s["status"] for _, s in events)
    expected.outbound_wamids = len({s["id"] for _, s in events})
    return iter(s for _, s in events)


def _body(
    generator: Generator, kinds: list[str], when: int, statuses: Iterator[Json], expected: Expected
) -> Json:
    changes = []
    for first in range(0, len(kinds), UPDATES_PER_CHANGE):
        messages: list[Json] = []
        contacts: list[Json] = []
        batch_statuses: list[Json] = []
        for kind in kinds[first : first + UPDATES_PER_CHANGE]:
            if kind == "status":
                batch_statuses.append(next(statuses))
                continue
            message, contact, total = generator.message(when)
            messages.append(message)
            contacts.append(contact)
            expected.messages += 1
            if total is not None:
                expected.orders += 1
                expected.order_revenue += total
        changes.append(change(messages, contacts, batch_statuses))
    return envelope(changes)


# The web benchmark's bodies


def web_body(generator: Generator, when: int, size: int) -> bytes:
    """A ~size-byte body: an inbound text replying to us, and two statuses of an earlier message."""
    lifecycle = generator.lifecycle(when - 120)[:2]
    message, contact, _ = generator.message(when, "text")
    document = envelope([change([message], [contact], [s for _, s in lifecycle])])
    body = encode(document)
    filler = size - len(body)
    if filler > 0:
        message["text"]["body"] += " " + "Lorem ipsum dolor sit amet. "[:12] * (filler // 12)
        body = encode(document)
    return body


def web_bodies(count: int, size: int = 2048, seed: int = 1) -> Iterator[bytes]:
    """count distinct bodies of about size bytes (distinct wamids, timestamps and texts)."""
    generator = Generator(seed, tag="WEB")
    for n in range(count):
        generator.outbound = generator.outbound[-100:]  # keep reply targets recent, memory flat
        yield web_body(generator, START + n % WINDOW_SECONDS, size)
