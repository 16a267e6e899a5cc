"""Two tenants' data on real PostgreSQL, with an API key each, for the REST API's tests (tests/test_api*.py).

Tenant A (Acme) and tenant B (Bravo) each have a catalog that holds a product with the retailer id SKU-TEE, a
customer, messages with delivery statuses and an order, written by the workers' own code from the sample
payloads; B's customer, order and products are what A's key must never reach.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from sqlalchemy import select
from werkzeug.test import TestResponse

from api import keys
from api.app import create_app
from cli import analytics, catalog
from models import WhatsAppCatalog, WhatsAppContact, WhatsAppOrder, WhatsAppProduct
from models.db import Database
from tests.conftest import PAYLOADS, TENANT_A, TENANT_B, Backend, fresh_postgres_backend, seed
from workers.jobs import process
from workers.tenants import TenantDirectory

CATALOG_B = "300000000000002"
CATALOG_B_CSV = "retailer_id,name,price,currency\nSKU-TEE,Bravo Tee,15,USD\nB-BAGEL,Bagel,1.25,USD\n"
BODIES_A = (
    "text_reply.json",
    "status_delivered.json",
    "status_read.json",
    "order_known_products.json",
    "order_with_note.json",
)
CUSTOMER_B = "15551230047"


@dataclass
class Api:
    app: APIFlask
    db: Database
    keys: dict[str, str]  # tenant name -> its key

    def call(
        self,
        method: str,
        path: str,
        tenant: str | None = "A",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> TestResponse:
        sent = dict(headers or {})
        if tenant is not None:
            sent["Authorization"] = f"Bearer {self.keys[tenant]}"
        return self.app.test_client().open(path, method=method, headers=sent, **kw)

    def get(self, path: str, tenant: str | None = "A", **kw: Any) -> TestResponse:
        return self.call("GET", path, tenant, **kw)

    def json(self, path: str, tenant: str = "A") -> Any:
        response = self.get(path, tenant)
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True))
        return response.json


def populate(backend: Backend, tmp: Path) -> dict[str, str]:
    """Both tenants' data, as the workers store it; returns an API key per tenant ("A", "B")."""
    db = backend.db
    seed(db)
    csv = tmp / "catalog_b.csv"
    csv.write_text(CATALOG_B_CSV)
    catalog.import_catalog(db, TENANT_B.phone_number_id, CATALOG_B, csv)
    bodies = [(PAYLOADS / name).read_bytes() for name in (*BODIES_A, "tenant_b.json")]
    written = process(db, TenantDirectory(None, "default"), bodies, None)
    assert not written.failures
    return {
        "A": keys.create(db, TENANT_A.phone_number_id, "tests A").key,
        "B": keys.create(db, TENANT_B.phone_number_id, "tests B").key,
    }


def tenant_id(db: Database, phone_number_id: str) -> int:
    (found,) = analytics.select_tenants(db, phone_number_id)
    return found.id


def ids_of(db: Database, tenant: str) -> dict[str, list[int]]:
    """Every id tenant B (or A) has, per kind of path parameter."""
    owner = tenant_id(db, TENANT_A.phone_number_id if tenant == "A" else TENANT_B.phone_number_id)
    with db.session() as session:
        catalogs = list(session.scalars(select(WhatsAppCatalog.id).where(WhatsAppCatalog.tenant_id == owner)))
        products = list(
            session.scalars(select(WhatsAppProduct.id).where(WhatsAppProduct.catalog_id.in_(catalogs)))
        )
        orders = list(session.scalars(select(WhatsAppOrder.id).where(WhatsAppOrder.tenant_id == owner)))
        customers = list(
            session.scalars(select(WhatsAppContact.id).where(WhatsAppContact.tenant_id == owner))
        )
    return {"catalog_id": catalogs, "product_id": products, "order_id": orders, "customer_id": customers}


def tenant_rows(db: Database, tenant: str) -> list[tuple[Any, ...]]:
    """Everything the API could change of a tenant: catalogs, products, orders and their statuses."""
    owner = tenant_id(db, TENANT_A.phone_number_id if tenant == "A" else TENANT_B.phone_number_id)
    with db.session() as session:
        catalogs = session.execute(
            select(
                WhatsAppCatalog.id,
                WhatsAppCatalog.name,
                WhatsAppCatalog.deleted_at,
                WhatsAppCatalog.updated_at,
            )
            .where(WhatsAppCatalog.tenant_id == owner)
            .order_by(WhatsAppCatalog.id)
        ).all()
        products = session.execute(
            select(
                WhatsAppProduct.id, WhatsAppProduct.name, WhatsAppProduct.price, WhatsAppProduct.deleted_at
            )
            .where(WhatsAppProduct.catalog_id.in_([c.id for c in catalogs]))
            .order_by(WhatsAppProduct.id)
        ).all()
        orders = session.execute(
            select(WhatsAppOrder.id, WhatsAppOrder.status, WhatsAppOrder.updated_at)
            .where(WhatsAppOrder.tenant_id == owner)
            .order_by(WhatsAppOrder.id)
        ).all()
    return [*map(tuple, catalogs), *map(tuple, products), *map(tuple, orders)]


@contextmanager
def api_for(postgres_db: Database, redis_url: str, tmp: Path) -> Iterator[Api]:
    with fresh_postgres_backend(postgres_db, redis_url) as backend:
        yield Api(create_app(backend.db), backend.db, populate(backend, tmp))
