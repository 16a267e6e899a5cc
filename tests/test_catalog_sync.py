"""`wahooks catalog sync` against the fake Graph API: every page, exact prices, created / updated /
unchanged / unavailable, products gone upstream kept, unreadable prices skipped, memory bounded by a page."""

import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from cli.main import main
from models import WhatsAppCatalog, WhatsAppOrder, WhatsAppOrderItem, WhatsAppProduct
from models.db import Database
from outbound import catalog
from outbound.graph import GraphClient
from outbound.intents import utcnow
from tests.conftest import TENANT_A, Backend, seed
from tests.fake_graph import FakeGraph

CATALOG = "300000000000009"
WABA = TENANT_A.waba_id or ""


def product(i: int, price: str | None = None) -> dict[str, Any]:
    return {
        "id": f"77{i:06d}",
        "retailer_id": f"SKU-{i:05d}",
        "name": f"Product {i}",
        "price": price or f"${i:,}.{i % 100:02d}",
        "currency": "USD",
        "availability": "in stock" if i % 3 else "out of stock",
    }


@pytest.fixture
def tenant(sqlite_backend: Backend) -> tuple[Database, int]:
    seed(sqlite_backend.db)
    with sqlite_backend.db.session() as session:
        tenant_id = session.scalar(select(WhatsAppCatalog.tenant_id).limit(1))
    assert tenant_id is not None
    return sqlite_backend.db, tenant_id


def run_sync(
    graph: FakeGraph, db: Database, tenant_id: int, catalogs: list[str] | None = None
) -> catalog.Summary:
    client = GraphClient(graph.url, "EAAG-sync-token")
    return catalog.sync(db, client, tenant_id, catalogs or catalog.catalogs_of(client, WABA))


def products(db: Database, catalog_id: str = CATALOG) -> dict[str, WhatsAppProduct]:
    with db.session() as session:
        rows = session.scalars(
            select(WhatsAppProduct)
            .join(WhatsAppCatalog, WhatsAppCatalog.id == WhatsAppProduct.catalog_id)
            .where(WhatsAppCatalog.catalog_id == catalog_id)
        )
        return {p.retailer_id: p for p in rows}


def test_every_page_is_read_with_exact_prices(graph: FakeGraph, tenant: tuple[Database, int]) -> None:
    db, tenant_id = tenant
    items = [product(i) for i in range(250)]
    graph.catalog(CATALOG, len(items), items.__getitem__, waba=WABA)
    summary = run_sync(graph, db, tenant_id)
    assert (summary.catalogs, summary.created, summary.updated, summary.unchanged) == (1, 250, 0, 0)
    assert summary.unavailable == 0 and summary.skipped == []
    assert len(graph.calls("GET", f"/{CATALOG}/products")) == 3  # 100 a page
    stored = products(db)
    assert len(stored) == 250
    assert stored["SKU-00123"].price == Decimal("123.23")
    big = stored["SKU-00249"]
    assert (big.price, big.currency, big.availability, big.meta_product_id) == (
        Decimal("249.49"),
        "USD",
        "out of stock",  # every third product
        "77000249",
    )
    with db.session() as session:
        name = session.scalar(select(WhatsAppCatalog.name).where(WhatsAppCatalog.catalog_id == CATALOG))
    assert name == f"Catalog {CATALOG}"


def test_a_second_sync_counts_changes_and_keeps_what_is_gone(
    graph: FakeGraph, tenant: tuple[Database, int]
) -> None:
    db, tenant_id = tenant
    items = [product(i) for i in range(10)]
    graph.catalog(CATALOG, len(items), items.__getitem__)
    run_sync(graph, db, tenant_id, [CATALOG])
    gone = products(db)["SKU-00007"]
    changed = [p for p in items if p["retailer_id"] != "SKU-00007"]
    changed[5] = product(5, price="$5.06")
    changed.append(product(10))
    graph.catalog(CATALOG, len(changed), changed.__getitem__)
    summary = run_sync(graph, db, tenant_id, [CATALOG])
    assert (summary.created, summary.updated, summary.unchanged, summary.unavailable) == (1, 1, 8, 1)
    stored = products(db)
    assert stored["SKU-00005"].price == Decimal("5.06")
    assert stored["SKU-00007"].id == gone.id and stored["SKU-00007"].removed_upstream_at is not None
    assert stored["SKU-00008"].removed_upstream_at is None
    # It comes back: updated, no longer removed.
    graph.catalog(CATALOG, len(items), items.__getitem__)
    again = run_sync(graph, db, tenant_id, [CATALOG])
    assert (again.updated, again.unavailable) == (2, 1)  # SKU-00005's price back, SKU-00007 back; 10 gone
    assert products(db)["SKU-00007"].removed_upstream_at is None


def test_products_missing_from_meta_are_marked_never_deleted(
    graph: FakeGraph, tenant: tuple[Database, int]
) -> None:
    """The CSV-imported catalog: what Meta does not list is kept (orders point at it), marked removed."""
    db, tenant_id = tenant
    imported = products(db, "300000000000001")
    with db.session() as session:  # an order item points at a product that Meta will not list
        order = WhatsAppOrder(
            tenant_id=tenant_id, wamid="wamid.ORDER-1", total_amount=Decimal("19.99"), ordered_at=utcnow()
        )
        session.add(order)
        session.flush()
        session.add(
            WhatsAppOrderItem(
                order_id=order.id,
                position=0,
                product_id=imported["SKU-TEE"].id,
                product_retailer_id="SKU-TEE",
                quantity=1,
                item_price=Decimal("19.99"),
            )
        )
    graph.catalog("300000000000001", 1, product)
    summary = run_sync(graph, db, tenant_id, ["300000000000001"])
    assert summary.unavailable == len(imported)
    after = products(db, "300000000000001")
    assert set(after) == set(imported) | {"SKU-00000"}
    assert all(after[r].removed_upstream_at is not None for r in imported)
    with db.session() as session:
        assert session.scalar(select(WhatsAppOrderItem.product_id)) == imported["SKU-TEE"].id


def test_a_price_that_cannot_be_read_exactly_is_skipped_and_kept(
    graph: FakeGraph, tenant: tuple[Database, int]
) -> None:
    db, tenant_id = tenant
    items = [product(1), product(2)]
    graph.catalog(CATALOG, 2, items.__getitem__)
    run_sync(graph, db, tenant_id, [CATALOG])
    items[1] = {**product(2), "price": "KWD 1.500", "currency": "KWD"}
    summary = run_sync(graph, db, tenant_id, [CATALOG])
    assert summary.skipped == [
        f"{CATALOG}/SKU-00002: price 'KWD 1.500' is ambiguous in KWD: 3 decimals or a thousands separator"
    ]
    kept = products(db)["SKU-00002"]
    assert kept.price == Decimal("2.02") and kept.removed_upstream_at is None and summary.unavailable == 0


def peak_bytes(graph: FakeGraph, db: Database, tenant_id: int, count: int, catalog_id: str) -> int:
    graph.catalog(catalog_id, count, product)
    tracemalloc.start()
    try:
        summary = run_sync(graph, db, tenant_id, [catalog_id])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert summary.created == count


def test_memory_is_bounded_by_a_page_not_the_catalog(graph: FakeGraph, tenant: tuple[Database, int]) -> None:
    db, tenant_id = tenant
    peak_bytes(graph, db, tenant_id, 200, "300000000000010")  # warm every cache first
    small = peak_bytes(graph, db, tenant_id, 500, "300000000000011")
    large = peak_bytes(graph, db, tenant_id, 2500, "300000000000012")
    assert large < small * 1.5, (small, large)


def test_the_command(
    graph: FakeGraph,
    tenant: tuple[Database, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    db, _ = tenant
    items = [product(i) for i in range(3)]
    graph.catalog(CATALOG, 3, items.__getitem__, waba=WABA)
    monkeypatch.setenv("DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("WHATSAPP_GRAPH_URL", graph.url)
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-cli-sync-token")
    assert main(["catalog", "sync", "--phone-number-id", TENANT_A.phone_number_id]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "1 catalogs: 3 created, 0 updated, 0 unchanged, 0 unavailable (removed upstream), 0 skipped"
    )
    assert graph.tokens == {"Bearer EAAG-cli-sync-token"}
