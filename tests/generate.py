"""Synthetic webhook bodies for load and fault tests, with the counts they must produce."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

PHONE_NUMBER_ID = "100000000000001"
BASE_TIMESTAMP = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp())


@dataclass
class Batch:
    bodies: list[bytes] = field(default_factory=list)
    inbound: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: {"sent": 0, "delivered": 0, "read": 0})

    @property
    def analytics(self) -> dict[str, int]:
        """The day's counters these bodies must leave, however often and in whatever order they arrive."""
        return {"messages_received": self.inbound, **{f"messages_{s}": n for s, n in self.statuses.items()}}


def _message(n: int) -> dict[str, object]:
    return {
        "from": f"1555{n % 9000:07d}",
        "id": f"wamid.LOAD-IN-{n}",
        "timestamp": str(BASE_TIMESTAMP + n % 3600),
        "type": "text",
        "text": {"body": f"message {n}: " + "lorem ipsum " * 8},
    }


def _status(n: int, status: str) -> dict[str, object]:
    return {
        "id": f"wamid.LOAD-OUT-{n}",
        "status": status,
        "timestamp": str(BASE_TIMESTAMP + n % 3600),
        "recipient_id": f"1555{n % 9000:07d}",
    }


def bodies(count: int, messages_per_body: int = 5, statuses_per_body: int = 5, start: int = 0) -> Batch:
    """`count` bodies, each with its own inbound messages and sent/delivered/read statuses."""
    batch = Batch()
    for b in range(start, start + count):
        ids = range(b * 1000, b * 1000 + messages_per_body)
        outbound = range(b * 1000, b * 1000 + statuses_per_body)
        statuses = [_status(n, s) for n in outbound for s in ("read", "sent", "delivered")]
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Load"}, "wa_id": "15550000000"}],
            "messages": [_message(n) for n in ids],
            "statuses": statuses,
        }
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}],
        }
        batch.bodies.append(json.dumps(body).encode())
        batch.inbound += len(ids)
        for s in batch.statuses:
            batch.statuses[s] += len(outbound)
    return batch
