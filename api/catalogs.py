"""Catalogs and their products: create, read, update, soft-delete.

A deleted catalog or product is hidden from the API and kept in the database, since orders and their items
point at it; creating it again (same Meta catalog id, or same retailer id in the catalog) brings it back with
the values given. Products are validated as a CSV import validates them (cli/catalog.py).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from apiflask import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.pages import page
from api.resource import IF_MATCH_REFUSED, check_if_match, first_or_404, tenant_session, v1
from api.schemas import (
    CatalogIn,
    CatalogOut,
    CatalogPage,
    CatalogPatch,
    PageQuery,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
)
from models import WhatsAppCatalog, WhatsAppProduct

LIVE_CATALOG = WhatsAppCatalog.deleted_at.is_(None)
LIVE_PRODUCT = WhatsAppProduct.deleted_at.is_(None)


def catalog_out(row: WhatsAppCatalog) -> CatalogOut:
    return CatalogOut(
        id=row.id,
        meta_catalog_id=row.catalog_id,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def product_out(row: WhatsAppProduct) -> ProductOut:
    return ProductOut(
        id=row.id,
        catalog=row.catalog_id,
        retailer_id=row.retailer_id,
        name=row.name,
        price=row.price,
        currency=row.currency,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _catalog(catalog_id: int) -> WhatsAppCatalog:
    query = select(WhatsAppCatalog).where(WhatsAppCatalog.id == catalog_id, LIVE_CATALOG)
    found: WhatsAppCatalog = first_or_404(tenant_session().scalar(query), f"catalog {catalog_id}")
    return found


def _product(product_id: int, lock: bool = False) -> WhatsAppProduct:
    query = (
        select(WhatsAppProduct)
        .join(WhatsAppCatalog, WhatsAppCatalog.id == WhatsAppProduct.catalog_id)
        .where(WhatsAppProduct.id == product_id, LIVE_PRODUCT, LIVE_CATALOG)
    )
    found: WhatsAppProduct = first_or_404(
        tenant_session().scalar(query.with_for_update(of=WhatsAppProduct) if lock else query),
        f"product {product_id}",
    )
    return found


Row = TypeVar("Row", WhatsAppCatalog, WhatsAppProduct)


def _new_or_deleted(existing: Row | None, make: Callable[[], Row], conflict: str) -> Row:
    """The row a create writes: a new one, or the deleted one with the same key, brought back; a 409 naming
    the live one if there is one."""
    if existing is not None and existing.deleted_at is None:
        abort(409, conflict, {"id": existing.id})
    row = existing if existing is not None else make()
    if existing is None:
        tenant_session().add(row)
    row.deleted_at = None
    return row


def _saved() -> None:
    """Commit; a unique key another request took meanwhile is a 409, as if it had been there first."""
    session = tenant_session()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        abort(409, "it exists already (created meanwhile)")


@v1.get("/catalogs")
@v1.input(PageQuery, location="query", arg_name="query")
@v1.output(CatalogPage)
def list_catalogs(query: PageQuery) -> dict[str, object]:
    """The tenant's catalogs, oldest first."""
    found = page(
        tenant_session(),
        select(WhatsAppCatalog).where(LIVE_CATALOG),
        [WhatsAppCatalog.id],
        query.cursor,
        query.limit,
    )
    return {"data": [catalog_out(row) for (row,) in found.rows], "next_cursor": found.next_cursor}


@v1.post("/catalogs")
@v1.input(CatalogIn, arg_name="body")
@v1.output(CatalogOut, status_code=201)
@v1.doc(responses={409: "a catalog with this Meta id exists"})
def create_catalog(body: CatalogIn) -> CatalogOut:
    """Add a catalog (or bring back a deleted one with this Meta id)."""
    session = tenant_session()
    row = _new_or_deleted(
        session.scalar(select(WhatsAppCatalog).where(WhatsAppCatalog.catalog_id == body.meta_catalog_id)),
        lambda: WhatsAppCatalog(tenant_id=session.tenant_id, catalog_id=body.meta_catalog_id),
        f"catalog {body.meta_catalog_id} exists",
    )
    row.name = body.name
    _saved()
    return catalog_out(row)


@v1.get("/catalogs/<int:catalog_id>")
@v1.output(CatalogOut)
def get_catalog(catalog_id: int) -> CatalogOut:
    return catalog_out(_catalog(catalog_id))


@v1.patch("/catalogs/<int:catalog_id>")
@v1.input(CatalogPatch, arg_name="body")
@v1.output(CatalogOut)
@v1.doc(responses=IF_MATCH_REFUSED)
def update_catalog(catalog_id: int, body: CatalogPatch) -> CatalogOut:
    row = _catalog(catalog_id)
    check_if_match(catalog_out(row))
    row.name = body.name
    _saved()
    return catalog_out(row)


@v1.delete("/catalogs/<int:catalog_id>")
@v1.output({}, status_code=204)
def delete_catalog(catalog_id: int) -> tuple[str, int]:
    """Hide the catalog and its products (kept for the orders that name them)."""
    _catalog(catalog_id).deleted_at = datetime.now(UTC)
    _saved()
    return "", 204


@v1.get("/catalogs/<int:catalog_id>/products")
@v1.input(PageQuery, location="query", arg_name="query")
@v1.output(ProductPage)
def list_products(catalog_id: int, query: PageQuery) -> dict[str, object]:
    """A catalog's products, oldest first."""
    _catalog(catalog_id)
    products = select(WhatsAppProduct).where(WhatsAppProduct.catalog_id == catalog_id, LIVE_PRODUCT)
    found = page(tenant_session(), products, [WhatsAppProduct.id], query.cursor, query.limit)
    return {"data": [product_out(row) for (row,) in found.rows], "next_cursor": found.next_cursor}


@v1.post("/catalogs/<int:catalog_id>/products")
@v1.input(ProductIn, arg_name="body")
@v1.output(ProductOut, status_code=201)
@v1.doc(responses={409: "the catalog has a product with this retailer id"})
def create_product(catalog_id: int, body: ProductIn) -> ProductOut:
    """Add a product (or bring back a deleted one with this retailer id)."""
    _catalog(catalog_id)
    same_retailer_id = select(WhatsAppProduct).where(
        WhatsAppProduct.catalog_id == catalog_id, WhatsAppProduct.retailer_id == body.retailer_id
    )
    row = _new_or_deleted(
        tenant_session().scalar(same_retailer_id),
        lambda: WhatsAppProduct(catalog_id=catalog_id, retailer_id=body.retailer_id),
        f"retailer id {body.retailer_id} exists in this catalog",
    )
    row.name, row.price, row.currency = body.name, body.price, body.currency
    _saved()
    return product_out(row)


@v1.get("/products/<int:product_id>")
@v1.output(ProductOut)
def get_product(product_id: int) -> ProductOut:
    return product_out(_product(product_id))


@v1.patch("/products/<int:product_id>")
@v1.input(ProductPatch, arg_name="body")
@v1.output(ProductOut)
@v1.doc(responses=IF_MATCH_REFUSED)
def update_product(product_id: int, body: ProductPatch) -> ProductOut:
    row = _product(product_id, lock=True)
    check_if_match(product_out(row))
    for field in ("name", "price", "currency"):
        if (value := getattr(body, field)) is not None:
            setattr(row, field, value)
    _saved()
    return product_out(row)


@v1.delete("/products/<int:product_id>")
@v1.output({}, status_code=204)
def delete_product(product_id: int) -> tuple[str, int]:
    """Hide the product (kept for the order items that point at it)."""
    _product(product_id).deleted_at = datetime.now(UTC)
    _saved()
    return "", 204
