"""A fake of Meta's Graph API, served on loopback by a real HTTP server (pytest-httpserver, threaded), so the
real `requests` stack runs; and webhook bodies built for the outbound tests.

It answers what wahooks asks, in Meta's documented shapes: sends and mark-read on `/{phone-number-id}/
messages`, `/{waba-id}/product_catalogs`, `/{catalog-id}` (name, product_count), `/{catalog-id}/products`
(cursor paging, products built page by page so a large catalog costs no memory here), `/{media-id}` and
the media bytes. A test queues error answers for a path (`fail`), and may hold sends (`hold_sends`).
"""

import hashlib
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

VERSION = "v26.0"
Product = Callable[[int], dict[str, Any]]


@dataclass
class Failure:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def error_body(code: int, message: str = "error", subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


class FakeGraph:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.url = server.url_for(f"/{VERSION}").rstrip("/")
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # (method, path, JSON body)
        self.tokens: set[str] = set()
        self.failures: defaultdict[str, list[Failure]] = defaultdict(list)
        self.catalogs: dict[str, list[str]] = {}  # waba -> catalog ids
        self.products: dict[str, tuple[int, Product]] = {}  # catalog -> (count, the i-th product)
        self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (bytes, mime type)
        self.served_sha256: dict[str, str] = {}  # media id -> the hash announced, when not the true one
        self.sends_held = threading.Event()
        self.sends_held.set()
        self.send_arrived = threading.Event()
        self._sent = 0
        server.expect_request(re.compile(r"/.*")).respond_with_handler(self._handle)

    # What a test reads

    def calls(self, method: str, suffix: str) -> list[dict[str, Any] | None]:
        with self.lock:
            return [body for m, path, body in self.requests if m == method and path.endswith(suffix)]

    @property
    def sends(self) -> list[dict[str, Any]]:
        return [b for b in self.calls("POST", "/messages") if b is not None and "type" in b]

    @property
    def reads(self) -> list[dict[str, Any]]:
        return [b for b in self.calls("POST", "/messages") if b is not None and b.get("status") == "read"]

    # What a test sets up

    def fail(self, path: str, *failures: Failure) -> None:
        with self.lock:
            self.failures[path].extend(failures)

    def catalog(self, catalog_id: str, count: int, product: Product, waba: str | None = None) -> None:
        self.products[catalog_id] = (count, product)
        if waba is not None:
            self.catalogs.setdefault(waba, []).append(catalog_id)

    @contextmanager
    def hold_sends(self) -> Iterator[None]:
        """Sends are recorded (Meta has them) but not answered until the block ends."""
        self.sends_held.clear()
        try:
            yield
        finally:
            self.sends_held.set()

    # The server's side

    def _handle(self, request: Request) -> Response:
        # pytest-httpserver keeps every request and answer; what a test reads is kept in self.requests, and
        # a large catalog's pages held there would count in a memory measurement of the sync.
        self.server.clear_log()
        path = request.path.removeprefix(f"/{VERSION}")
        body = request.get_json(silent=True) if request.data else None
        with self.lock:
            self.requests.append((request.method, path, body))
            self.tokens.add(request.headers.get("Authorization", ""))
            queued = self.failures.get(path)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            time.sleep(failure.delay)
            return Response(
                json.dumps(failure.body) if failure.body else "",
                failure.status,
                failure.headers,
                content_type="application/json",
            )
        parts = [p for p in path.split("/") if p]
        if request.method == "POST" and len(parts) == 2 and parts[1] == "messages":
            return self._message(body or {})
        if parts[:1] == ["media-bytes"]:
            data, mime = self.media[parts[1]]
            return Response(data, 200, content_type=mime)
        if len(parts) == 2 and parts[1] == "product_catalogs":
            return _json({"data": [{"id": c} for c in self.catalogs.get(parts[0], [])], "paging": {}})
        if len(parts) == 2 and parts[1] == "products":
            return self._products(parts[0], request)
        if len(parts) == 1 and parts[0] in self.products:
            return _json(
                {"id": parts[0], "name": f"Catalog {parts[0]}", "product_count": self.products[parts[0]][0]}
            )
        if len(parts) == 1 and parts[0] in self.media:
            data, mime = self.media[parts[0]]
            digest = self.served_sha256.get(parts[0], hashlib.sha256(data).hexdigest())
            url = self.server.url_for(f"/media-bytes/{parts[0]}")
            return _json(
                {
                    "messaging_product": "whatsapp",
                    "url": url,
                    "mime_type": mime,
                    "sha256": digest,
                    "file_size": str(len(data)),
                    "id": parts[0],
                }
            )
        return _json(error_body(100, f"Unsupported request: {request.method} {path}", 33), 400)

    def _message(self, body: dict[str, Any]) -> Response:
        if body.get("status") == "read":
            return _json({"success": True})
        self.send_arrived.set()
        self.sends_held.wait(timeout=30)
        with self.lock:
            self._sent += 1
            wamid = f"wamid.FAKE-SENT-{self._sent}"
        to = body.get("to") or body.get("recipient")
        return _json(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            }
        )

    def _products(self, catalog_id: str, request: Request) -> Response:
        count, product = self.products[catalog_id]
        limit = int(request.args.get("limit", "25"))
        start = int(request.args.get("after", "0"))
        end = min(count, start + limit)
        page: dict[str, Any] = {
            "data": [product(i) for i in range(start, end)],
            "paging": {"cursors": {"before": str(start), "after": str(end)}},
        }
        if end < count:
            page["paging"]["next"] = self.server.url_for(f"/{VERSION}/{catalog_id}/products?after={end}")
        return _json(page)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


@contextmanager
def fake_graph() -> Iterator[FakeGraph]:
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        yield FakeGraph(server)
    finally:
        server.clear()
        server.stop()


# Webhook bodies


def body(
    phone_number_id: str,
    *,
    messages: Sequence[dict[str, Any]] = (),
    statuses: Sequence[dict[str, Any]] = (),
    contacts: list[dict[str, Any]] | None = None,
) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = (
            contacts if contacts is not None else [{"profile": {"name": "Ana"}, "wa_id": "15551230001"}]
        )
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    entry = {"id": "200000000000001", "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def text_message(wamid: str, timestamp: int | None = None, sender: str = "15551230001") -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(timestamp or int(time.time())),
        "type": "text",
        "text": {"body": "hello"},
    }


def order_message(
    wamid: str, items: list[tuple[str, int, str]], catalog_id: str = "300000000000001"
) -> dict[str, Any]:
    product_items = [
        {"product_retailer_id": r, "quantity": q, "item_price": p, "currency": "USD"} for r, q, p in items
    ]
    return {
        "from": "15551230001",
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "order",
        "order": {"catalog_id": catalog_id, "product_items": product_items},
    }


def image_message(wamid: str, media_id: str) -> dict[str, Any]:
    return {
        "from": "15551230001",
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "image",
        "image": {"id": media_id, "mime_type": "image/jpeg", "sha256": "unused"},
    }


def status(wamid: str, name: str, callback: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(int(time.time())),
        "recipient_id": "15551230001",
    }
    if callback is not None:
        found["biz_opaque_callback_data"] = callback
    return found
