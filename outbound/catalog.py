"""`wahooks catalog sync`: a tenant's catalogs, read from Meta page by page into whatsapp_products.

The WABA's catalogs come from `GET /{waba-id}/product_catalogs` (or one is named), each catalog's size
and name from `GET /{catalog-id}?fields=name,product_count`, its products from
`GET /{catalog-id}/products?fields=id,retailer_id,name,price,currency,availability`, a page at a time
(cursor paging). Each page is parsed, compared with what is stored and written in a transaction of its
own, so memory holds one page whatever the catalog's size. Prices are read from Meta's display text into
Decimal exactly (outbound/prices.py); a product whose price cannot be read exactly, or whose fields do
not fit their columns, is skipped and named in the summary (and keeps its stored values). Every product
a sync sees gets the sync's time; once all pages are in, the catalog's products that this sync did not
see are marked removed upstream (`removed_upstream_at`), never deleted: order items keep pointing at them.
A sync that fails midway marks nothing, and running it again is safe.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import Insert, and_, func, or_, select, update
from sqlalchemy.orm import Session

from cli.currencies import ISO_4217
from models import WhatsAppCatalog, WhatsAppProduct
from models.db import Database, dialect_of, upsert
from models.limits import row_problems
from outbound import intents
from outbound.graph import GraphClient, Json
from outbound.prices import parse_price

PRODUCT_FIELDS = "id,retailer_id,name,price,currency,availability"
PAGE_SIZE = 100
PRODUCTS = WhatsAppProduct.__table__
CATALOGS = WhatsAppCatalog.__table__
COMPARED = ("name", "price", "currency", "availability", "meta_product_id")


@dataclass(frozen=True)
class Product:
    retailer_id: str
    name: str
    price: Decimal
    currency: str
    availability: str | None
    meta_product_id: str | None

    def row(self) -> dict[str, object]:
        return {
            "retailer_id": self.retailer_id,
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "availability": self.availability,
            "meta_product_id": self.meta_product_id,
        }


@dataclass
class Summary:
    """What a sync did, product by product."""

    catalogs: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unavailable: int = 0  # removed upstream by this sync
    skipped: list[str] = field(default_factory=list)  # "catalog/retailer id: why"

    def line(self) -> str:
        return (
            f"{self.catalogs} catalogs: {self.created} created, {self.updated} updated, {self.unchanged}"
            f" unchanged, {self.unavailable} unavailable (removed upstream), {len(self.skipped)} skipped"
        )


def parse_product(item: Json) -> Product:
    """One product of Meta's answer; ValueError saying why it cannot be stored."""
    retailer_id, name = item.get("retailer_id"), item.get("name")
    price, currency = item.get("price"), item.get("currency")
    if not isinstance(retailer_id, str) or not retailer_id:
        raise ValueError("no retailer_id")
    if not isinstance(name, str) or not name:
        raise ValueError("no name")
    if not isinstance(currency, str) or currency.upper() not in ISO_4217:
        raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
    if not isinstance(price, str | int) or isinstance(price, bool):
        raise ValueError("no price")
    availability, meta_id = item.get("availability"), item.get("id")
    product = Product(
        retailer_id,
        name,
        parse_price(str(price), currency),
        currency.upper(),
        availability if isinstance(availability, str) else None,
        str(meta_id) if isinstance(meta_id, str | int) else None,
    )
    problems = row_problems(PRODUCTS, product.row())
    if problems:
        raise ValueError("; ".join(problems))
    return product


def catalogs_of(client: GraphClient, waba_id: str) -> list[str]:
    """The ids of the catalogs connected to a WhatsApp Business Account."""
    found = []
    for page in client.pages(f"{waba_id}/product_catalogs", {"fields": "id"}):
        found += [str(c["id"]) for c in page if isinstance(c.get("id"), str | int)]
    return found


class Progress:
    """What a sync reports as it goes (the CLI draws a bar); the default reports nothing."""

    def catalog(self, catalog_id: str, size: int | None) -> None:
        """A catalog starts; size is Meta's product_count, when it gives one."""

    def page(self, products: int) -> None:
        """A page of products is written."""


def sync(
    db: Database,
    client: GraphClient,
    tenant_id: int,
    catalog_ids: list[str],
    progress: Progress | None = None,
) -> Summary:
    """Sync these catalogs of the tenant, one after the other."""
    progress = progress or Progress()
    summary = Summary()
    for catalog_id in catalog_ids:
        info = client.get(catalog_id, {"fields": "name,product_count"})
        size = info.get("product_count")
        name = info.get("name")
        progress.catalog(catalog_id, size if isinstance(size, int) else None)
        _sync_catalog(
            db, client, tenant_id, catalog_id, name if isinstance(name, str) else None, summary, progress
        )
        summary.catalogs += 1
    return summary


def _sync_catalog(
    db: Database,
    client: GraphClient,
    tenant_id: int,
    catalog_id: str,
    name: str | None,
    summary: Summary,
    progress: Progress,
) -> None:
    started = intents.utcnow()
    with db.session() as session:
        catalog_pk = session.execute(
            _catalog_statement(dialect_of(session)),
            {"tenant_id": tenant_id, "catalog_id": catalog_id, "name": name},
        ).scalar_one()
    for page in client.pages(f"{catalog_id}/products", {"fields": PRODUCT_FIELDS, "limit": str(PAGE_SIZE)}):
        products: dict[str, Product] = {}
        seen: set[str] = set()
        for item in page:
            retailer_id = item.get("retailer_id")
            if isinstance(retailer_id, str):
                seen.add(retailer_id)  # a product we cannot read is not gone: it keeps what is stored
            try:
                product = parse_product(item)
            except ValueError as why:  # PriceError is one
                summary.skipped.append(f"{catalog_id}/{retailer_id}: {why}")
                continue
            products[product.retailer_id] = product
        with db.session() as session:
            _write_page(session, catalog_pk, products, seen, started, summary)
        progress.page(len(page))
    with db.session() as session:
        gone = session.execute(
            update(PRODUCTS)
            .where(
                PRODUCTS.c.catalog_id == catalog_pk,
                PRODUCTS.c.removed_upstream_at.is_(None),
                or_(PRODUCTS.c.synced_at.is_(None), PRODUCTS.c.synced_at < started),
            )
            .values(removed_upstream_at=func.now(), updated_at=func.now())
            .returning(PRODUCTS.c.id)
        )
        summary.unavailable += len(gone.all())


def _write_page(
    session: Session,
    catalog_pk: int,
    products: dict[str, Product],
    seen: set[str],
    started: datetime,
    summary: Summary,
) -> None:
    stored = {
        row.retailer_id: row
        for row in session.execute(
            select(
                PRODUCTS.c.retailer_id, PRODUCTS.c.removed_upstream_at, *(PRODUCTS.c[c] for c in COMPARED)
            ).where(PRODUCTS.c.catalog_id == catalog_pk, PRODUCTS.c.retailer_id.in_(sorted(seen)))
        )
    }
    changed = []
    for retailer_id in sorted(products):
        product, row = products[retailer_id], stored.get(retailer_id)
        new = product.row()
        if row is None:
            summary.created += 1
        elif row.removed_upstream_at is not None or any(getattr(row, c) != new[c] for c in COMPARED):
            summary.updated += 1
        else:
            summary.unchanged += 1
            continue
        changed.append({"catalog_id": catalog_pk, **new, "synced_at": started, "removed_upstream_at": None})
    if changed:
        session.execute(_product_statement(dialect_of(session)), changed)
    written = {row["retailer_id"] for row in changed}
    unchanged = sorted(r for r in seen if r in stored and r not in written)
    if unchanged:
        session.execute(
            update(PRODUCTS)
            .where(and_(PRODUCTS.c.catalog_id == catalog_pk, PRODUCTS.c.retailer_id.in_(unchanged)))
            .values(synced_at=started)
        )


@cache
def _catalog_statement(dialect: str) -> Insert:
    stmt = upsert(dialect, CATALOGS)
    return stmt.on_conflict_do_update(
        index_elements=["tenant_id", "catalog_id"],
        set_={"name": func.coalesce(stmt.excluded.name, CATALOGS.c.name), "updated_at": func.now()},
    ).returning(CATALOGS.c.id)


@cache
def _product_statement(dialect: str) -> Insert:
    stmt = upsert(dialect, PRODUCTS)
    columns = (*COMPARED, "synced_at", "removed_upstream_at")
    return stmt.on_conflict_do_update(
        index_elements=["catalog_id", "retailer_id"],
        set_={**{c: stmt.excluded[c] for c in columns}, "updated_at": func.now()},
    ).returning(PRODUCTS.c.id)
