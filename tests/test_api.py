"""The REST API on real PostgreSQL: keys, the tenant wall, and each resource's behaviour.

The isolation tests give tenant A's key every id tenant B has, on every route that takes one, with every
method; they compare every list and count A's key gets with A's own rows in the database; and they check the
TenantSession itself refuses what no criterion could cover.
"""

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text, update

from api import keys
from api.scope import OutsideTenantScope, TenantSession
from cli import analytics
from cli.main import main
from models import (
    ApiKey,
    WebhookEvent,
    WhatsAppCatalog,
    WhatsAppMessage,
    WhatsAppOrder,
    WhatsAppOrderItem,
    WhatsAppProduct,
)
from models.db import Database
from tests.api_fixtures import CUSTOMER_B, Api, api_for, ids_of, tenant_id, tenant_rows
from tests.conftest import TENANT_A, TENANT_B
from tests.processes import free_port, wait_until
from tests.test_procfile import answers, launch, stop

pytestmark = pytest.mark.postgres
V1 = "/api/v1"


@pytest.fixture(scope="module")
def api(postgres_db: Database, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Built once: the tests below that write touch rows of their own, or none that others read."""
    with api_for(postgres_db, redis_url, tmp_path_factory.mktemp("api")) as built:
        yield built


def api_routes(api: Api) -> list[tuple[str, str]]:
    """(method, rule) of every operation of the API, the OpenAPI description and docs aside."""
    found = []
    for rule in api.app.url_map.iter_rules():
        if rule.rule.startswith(V1) and not rule.endpoint.startswith("openapi."):
            found += [(method, rule.rule) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def fill(rule: str, values: dict[str, Any]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule)


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    assert set(body) == {"status", "code", "message", "detail"} and body["status"] == status
    return body


# Keys


def test_every_operation_refuses_a_request_without_a_valid_key(api: Api) -> None:
    routes = api_routes(api)
    assert len(routes) >= 15
    values = {"catalog_id": 1, "product_id": 1, "order_id": 1, "customer_id": 1}
    for method, rule in routes:
        path = fill(rule, values)
        for headers in ({}, {"Authorization": "Bearer wahooks_not-a-key"}, {"Authorization": "Basic eDp5"}):
            response = api.call(method, path, tenant=None, headers=headers, json={})
            assert error_of(response, 401)["code"] == "unauthorized", (method, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_description_and_docs_are_public_and_describe_every_operation(api: Api) -> None:
    spec = api.get(f"{V1}/openapi.json", tenant=None).json
    assert spec["openapi"].startswith("3.")
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert described == {(m, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r)) for m, r in api_routes(api)}
    assert all(
        op["security"] == [{"BearerAuth": []}] for ops in spec["paths"].values() for op in ops.values()
    )
    assert api.get(f"{V1}/docs", tenant=None).status_code == 200


def test_a_key_is_stored_hashed_and_a_revoked_key_is_refused(api: Api) -> None:
    made = keys.create(api.db, TENANT_A.phone_number_id, "to revoke")
    with api.db.session() as session:
        row = session.get_one(ApiKey, made.id)
        assert row.last_used_at is None and made.key not in (row.key_hash, row.prefix)
        assert row.key_hash == keys.hash_key(made.key) and made.key.startswith(row.prefix)
    headers = {"Authorization": f"Bearer {made.key}"}
    assert api.call("GET", f"{V1}/orders", tenant=None, headers=headers).status_code == 200
    with api.db.session() as session:
        assert session.get_one(ApiKey, made.id).last_used_at is not None
    keys.revoke(api.db, made.id)
    assert error_of(api.call("GET", f"{V1}/orders", tenant=None, headers=headers), 401)


def test_wahooks_api_keys_create_list_revoke(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    monkeypatch.setenv("DATABASE_URL", api.db.engine.url.render_as_string(hide_password=False))
    assert main(["api-keys", "create", "--tenant", TENANT_B.name, "--name", "support desk"]) == 0
    shown = capsys.readouterr().out
    key = shown.split()[-1]
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    assert main(["api-keys", "list", "--tenant", TENANT_B.phone_number_id]) == 0
    listing = capsys.readouterr().out
    assert "support desk" in listing and key not in listing and key[: keys.SHOWN_CHARACTERS] in listing
    key_id = next(k.id for k in keys.listing(api.db) if k.name == "support desk")
    assert main(["api-keys", "revoke", str(key_id)]) == 0
    assert "revoked" in capsys.readouterr().out
    assert keys.authenticate(api.db, key) is None
    assert main(["api-keys", "create", "--tenant", "nobody", "--name", "x"]) == 2
    assert main(["api-keys", "revoke", "999999"]) == 2


# The tenant wall


def test_a_key_reaches_no_id_of_another_tenant_by_any_route_and_method(api: Api) -> None:
    theirs = ids_of(api.db, "B")
    assert all(theirs.values())
    before = tenant_rows(api.db, "B")
    tried = 0
    for method, rule in api_routes(api):
        for name in re.findall(r"<int:(\w+)>", rule):
            for their_id in theirs[name]:
                path = fill(rule, {name: their_id})
                response = api.call(method, path, tenant="A", json=_fitting(method, rule))
                assert error_of(response, 404)["code"] == "not_found", (method, path)
                tried += 1
    assert tried >= 10
    assert tenant_rows(api.db, "B") == before


def _fitting(method: str, rule: str) -> dict[str, str]:
    """A body the route would accept, so that only the id can be what it refuses."""
    if rule.endswith("/products") and method == "POST":
        return {"retailer_id": "A-NEW", "name": "x", "price": "1", "currency": "USD"}
    return {"status": "cancelled"} if rule.startswith(f"{V1}/orders") else {"name": "x"}


def test_every_list_holds_the_keys_tenant_rows_and_no_others(api: Api) -> None:
    for tenant, other in (("A", "B"), ("B", "A")):
        mine, theirs = ids_of(api.db, tenant), ids_of(api.db, other)
        listed = {
            "catalog_id": [c["id"] for c in _all(api, f"{V1}/catalogs", tenant)],
            "order_id": [o["id"] for o in _all(api, f"{V1}/orders", tenant)],
        }
        listed["product_id"] = [
            p["id"] for c in listed["catalog_id"] for p in _all(api, f"{V1}/catalogs/{c}/products", tenant)
        ]
        listed["customer_id"] = [c["id"] for c in _all(api, f"{V1}/customers", tenant)]
        for kind, ids in listed.items():
            assert sorted(ids) == sorted(mine[kind]) and not set(ids) & set(theirs[kind]), (tenant, kind)
    # Filtering by another tenant's customer finds nothing, rather than their customer or orders.
    assert api.json(f"{V1}/customers?wa_id={CUSTOMER_B}", "A")["data"] == []
    assert [c["wa_id"] for c in api.json(f"{V1}/customers?wa_id={CUSTOMER_B}", "B")["data"]] == [CUSTOMER_B]
    assert api.json(f"{V1}/orders?wa_id={CUSTOMER_B}", "A")["data"] == []
    assert len(api.json(f"{V1}/orders?wa_id={CUSTOMER_B}", "B")["data"]) == 1


def _all(api: Api, path: str, tenant: str) -> list[dict[str, Any]]:
    """Every item of a list, page by page (two items a page, so the cursors are exercised)."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        joiner = "&" if "?" in path else "?"
        page = api.json(f"{path}{joiner}limit=2" + (f"&cursor={cursor}" if cursor else ""), tenant)
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_analytics_are_the_keys_tenants_own(api: Api) -> None:
    for tenant, number in (("A", TENANT_A.phone_number_id), ("B", TENANT_B.phone_number_id)):
        expected = analytics.report(api.db, number, None, None)
        got = api.json(f"{V1}/analytics/daily", tenant)
        assert got["days"] == [analytics.day_record(day) for day in expected.series[0].days]
        csv = api.get(f"{V1}/analytics/daily.csv", tenant)
        assert csv.mimetype == "text/csv"
        assert csv.get_data(as_text=True) == analytics.as_csv(expected)


def test_a_tenant_session_refuses_what_no_criterion_covers(api: Api) -> None:
    owner = tenant_id(api.db, TENANT_A.phone_number_id)
    with TenantSession(api.db.engine, owner) as session:
        # Counted, joined or fetched by primary key, another tenant's rows are not there.
        total = session.scalar(select(func.count()).select_from(WhatsAppOrder))
        assert total == len(ids_of(api.db, "A")["order_id"])
        assert all(session.get(WhatsAppOrder, i) is None for i in ids_of(api.db, "B")["order_id"])
        items = session.scalar(
            select(func.count())
            .select_from(WhatsAppOrderItem)
            .join(WhatsAppOrder, WhatsAppOrder.id == WhatsAppOrderItem.order_id)
        )
        with api.db.session() as plain:
            every_item = plain.scalar(select(func.count()).select_from(WhatsAppOrderItem))
        assert 0 < items < every_item
        for refused in (select(WebhookEvent), text("SELECT 1"), select(WhatsAppMessage.__table__)):
            with pytest.raises(OutsideTenantScope):
                session.execute(refused)
        with pytest.raises(OutsideTenantScope):
            session.execute(update(WhatsAppOrder).values(status="cancelled"))
        session.rollback()
        theirs = ids_of(api.db, "B")["catalog_id"][0]
        session.add(WhatsAppProduct(catalog_id=theirs, retailer_id="X", name="x", price=1, currency="USD"))
        with pytest.raises(OutsideTenantScope):
            session.flush()


# Catalogs and products


def test_catalog_and_product_lifecycle(api: Api) -> None:
    made = api.call("POST", f"{V1}/catalogs", json={"meta_catalog_id": "400000000000001", "name": "Spring"})
    assert made.status_code == 201, made.json
    catalog = made.json
    assert catalog["meta_catalog_id"] == "400000000000001" and catalog["name"] == "Spring"
    again = api.call("POST", f"{V1}/catalogs", json={"meta_catalog_id": "400000000000001"})
    assert error_of(again, 409)["detail"] == {"id": catalog["id"]}
    products = f"{V1}/catalogs/{catalog['id']}/products"
    product = api.call(
        "POST", products, json={"retailer_id": "S-1", "name": "Kite", "price": "0.1", "currency": "EUR"}
    )
    assert product.status_code == 201
    assert (product.json["price"], product.json["currency"], product.json["catalog"]) == (
        "0.1000",
        "EUR",
        catalog["id"],
    )
    pid = product.json["id"]
    with api.db.session() as session:
        assert session.get_one(WhatsAppProduct, pid).price == Decimal("0.1")
    patched = api.call("PATCH", f"{V1}/products/{pid}", json={"price": "12.3456", "name": None})
    assert (patched.json["price"], patched.json["name"]) == ("12.3456", "Kite")
    assert api.call("DELETE", f"{V1}/products/{pid}").status_code == 204
    assert error_of(api.get(f"{V1}/products/{pid}"), 404)
    assert api.json(products)["data"] == []
    back = api.call(
        "POST", products, json={"retailer_id": "S-1", "name": "Kite 2", "price": "3", "currency": "EUR"}
    )
    assert (back.status_code, back.json["id"], back.json["price"]) == (201, pid, "3.0000")
    assert api.call("DELETE", f"{V1}/catalogs/{catalog['id']}").status_code == 204
    assert error_of(api.get(products), 404)
    assert error_of(api.get(f"{V1}/products/{pid}"), 404)
    with api.db.session() as session:  # kept, for the orders that may name them
        assert session.get_one(WhatsAppCatalog, catalog["id"]).deleted_at is not None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("price", "1.23456", "has more than 4 decimal places"),
        ("price", "-1", "must be at least 0"),
        ("price", "abc", "is not a decimal number"),
        ("price", "1e3", "at most 4 decimal places"),
        ("price", 12.5, "price must be a string"),
        ("price", "100000000000000", "must be at least 0 and below 100,000,000,000,000"),
        ("currency", "XYZ", "currency 'XYZ' is not an ISO 4217 code"),
        ("currency", "usd", "in capitals"),
        ("name", "", "at least 1 character"),
        ("retailer_id", "r" * 101, "at most 100 characters"),
        ("name", "a\x00b", "should match pattern"),
    ],
)
def test_a_product_is_validated_as_a_csv_line_is(api: Api, field: str, value: object, words: str) -> None:
    catalog = ids_of(api.db, "A")["catalog_id"][0]
    body = {"retailer_id": "V-1", "name": "Valid", "price": "1", "currency": "USD", field: value}
    refused = error_of(api.call("POST", f"{V1}/catalogs/{catalog}/products", json=body), 422)
    assert words in str(refused["detail"]["json"][field]), refused


# Orders


def test_orders_newest_first_filtered_and_paged(api: Api) -> None:
    orders = _all(api, f"{V1}/orders", "A")
    assert len(orders) == 2
    assert [o["ordered_at"] for o in orders] == sorted((o["ordered_at"] for o in orders), reverse=True)
    assert api.json(f"{V1}/orders?limit=1")["data"] == orders[:1]
    newest = orders[0]["ordered_at"]
    assert [o["id"] for o in api.json(f"{V1}/orders?since={newest.replace('+', '%2B')}")["data"]] == [
        orders[0]["id"]
    ]
    assert [o["id"] for o in api.json(f"{V1}/orders?until={newest.replace('+', '%2B')}")["data"]] == [
        orders[1]["id"]
    ]
    assert api.json(f"{V1}/orders?status=shipped")["data"] == []
    assert error_of(api.get(f"{V1}/orders?cursor=not-a-cursor"), 422)["detail"]["query"]["cursor"]
    assert error_of(api.get(f"{V1}/orders?status=lost"), 422)


def test_an_order_has_its_items_and_their_products(api: Api) -> None:
    with api.db.session() as session:
        order_id = session.scalar(
            select(WhatsAppOrder.id).where(WhatsAppOrder.wamid == "wamid.HBgLORDER-KNOWN-PRODUCTS-1")
        )
    order = api.json(f"{V1}/orders/{order_id}")
    assert order["total_amount"] == "48.9900" and order["status"] == "received"
    assert [(i["product_retailer_id"], i["quantity"], i["item_price"]) for i in order["items"]] == [
        ("SKU-TEE", 1, "19.9900"),
        ("SKU-MUG", 2, "8.5000"),
        ("SKU-CAP", 1, "12.0000"),
    ]
    assert [i["product"]["name"] for i in order["items"]] == ["Acme Tee", "Acme Mug", "Acme Cap"]
    # B's order links B's SKU-TEE, never A's product of the same retailer id.
    their_order = api.json(f"{V1}/orders?wa_id={CUSTOMER_B}", "B")["data"][0]
    their_items = api.json(f"{V1}/orders/{their_order['id']}", "B")["items"]
    assert their_items[0]["product"]["name"] == "Bravo Tee"


def test_an_order_moves_forward_only(api: Api) -> None:
    with api.db.session() as session:
        order_id = session.scalar(
            select(WhatsAppOrder.id).where(WhatsAppOrder.wamid == "wamid.HBgLORDER-WITH-NOTE-1")
        )
    path = f"{V1}/orders/{order_id}"
    read = api.get(path)
    stale = read.headers["ETag"]
    assert api.get(path, headers={"If-None-Match": stale}).status_code == 304
    assert (
        api.call("PATCH", path, json={"status": "confirmed"}, headers={"If-Match": stale}).json["status"]
        == "confirmed"
    )
    refused = error_of(api.call("PATCH", path, json={"status": "shipped"}, headers={"If-Match": stale}), 412)
    assert refused["detail"]["etag"] == api.get(path).headers["ETag"].strip('"')
    assert api.get(path, headers={"If-None-Match": stale}).status_code == 200
    assert api.call("PATCH", path, json={"status": "confirmed"}).status_code == 200  # a retry changes nothing
    backward = error_of(api.call("PATCH", path, json={"status": "received"}), 409)
    assert backward["detail"] == {"status": "confirmed", "allowed": ["shipped", "delivered", "cancelled"]}
    assert api.call("PATCH", path, json={"status": "delivered"}).json["status"] == "delivered"
    assert error_of(api.call("PATCH", path, json={"status": "cancelled"}), 409)["detail"]["allowed"] == []


# Conversations and customers


def test_a_conversation_in_order_with_delivery_statuses(api: Api) -> None:
    (customer,) = api.json(f"{V1}/customers?wa_id={CUSTOMER_B}", "B")["data"]
    messages = _all(api, f"{V1}/customers/{customer['id']}/messages", "B")
    # The reply the business sent (seen only by its statuses) sits at its send time, between the two.
    assert [m["wamid"] for m in messages] == [
        "wamid.HBgLTENANT-B-1",
        "wamid.HBgLTENANT-B-3",
        "wamid.HBgLTENANT-B-2",
    ]
    assert [m["at"] for m in messages] == sorted(m["at"] for m in messages)
    outbound = messages[1]
    assert (outbound["direction"], outbound["status"], outbound["at"]) == (
        "outbound",
        "read",
        outbound["sent_at"],
    )
    assert outbound["read_at"] and outbound["delivered_at"] is None
    assert messages[2]["order_id"] == api.json(f"{V1}/orders", "B")["data"][0]["id"]
    assert api.json(f"{V1}/customers/{customer['id']}", "B") == customer
    assert (customer["profile_name"], customer["marketing_opt_out"]) == ("Bravo Customer", False)


@pytest.mark.slow
def test_the_api_line_of_the_procfile_serves_the_api(api: Api, tmp_path: Path) -> None:
    port = free_port()
    url = api.db.engine.url.render_as_string(hide_password=False)
    process = launch(
        "api", {"API_PORT": str(port), "DATABASE_URL": url, "LOG_FORMAT": "json"}, tmp_path / "api.log"
    )
    try:
        base = f"http://127.0.0.1:{port}{V1}"
        wait_until(lambda: answers(f"{base}/openapi.json"), 30, "the api process answering")
        answer = requests.get(
            f"{base}/orders", headers={"Authorization": f"Bearer {api.keys['B']}"}, timeout=5
        )
        assert answer.status_code == 200 and len(answer.json()["data"]) == 1
        assert requests.get(f"{base}/orders", timeout=5).status_code == 401
    finally:
        stop(process)
    log = (tmp_path / "api.log").read_text()
    assert api.keys["B"] not in log


def test_what_the_fuzzer_found_is_answered_as_described(api: Api) -> None:
    """Each request here got a 500, a 405 or a success before schemathesis found it (test_api_fuzz.py)."""
    order = ids_of(api.db, "A")["order_id"][0]
    # An id past BIGINT, or 0, on a route with several methods: 404 (was 500 for a huge id, 405 for 0).
    for path in (f"{V1}/orders/{2**63}", f"{V1}/orders/0", f"{V1}/catalogs/99999999999999999999999"):
        assert error_of(api.call("PATCH", path, json=_fitting("PATCH", path)), 404)
    # OPTIONS, which Flask-HTTPAuth lets through without a key: the allowed methods, no tenant (was 500).
    options = api.call("OPTIONS", f"{V1}/customers/0", tenant=None)
    assert options.status_code == 200 and "GET" in options.headers["Allow"]
    # A body that is not a JSON object (apiflask read `null` as {}: a PATCH that changed nothing, 200).
    for body in ("null", "[]", "{", ""):
        sent = api.call("PATCH", f"{V1}/orders/{order}", data=body, content_type="application/json")
        assert error_of(sent, 400)["message"] == "the body must be a JSON object"
    # A time with an offset PostgreSQL refuses (+22:09), or one outside years 1-9999 once in UTC (was 500);
    # a number where a date belongs (was read as a Unix time: 1970-01-01).
    assert api.get(f"{V1}/orders?since=1602-05-16T08:06:55%2B22:09").status_code == 200
    assert api.get(f"{V1}/orders?until=0001-01-01T00:00:00%2B05:30").json["data"] == []
    assert error_of(api.get(f"{V1}/analytics/daily?until=0"), 422)["detail"]["query"]["until"]
