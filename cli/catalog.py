"""`wahooks catalog import`: load a product CSV into a tenant's catalog, all rows or none."""

import csv
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from cli.currencies import ISO_4217
from models import WhatsAppBusinessSettings, WhatsAppCatalog, WhatsAppProduct
from models.db import Database, dialect_of, upsert

if TYPE_CHECKING:
    from _csv import Reader  # what csv.reader() returns, as typeshed names it

HEADER = ("retailer_id", "name", "price", "currency")
# What the columns hold: whatsapp_products.retailer_id String(100), name String(300), price Numeric(18, 4).
MAX_LENGTH = {"retailer_id": 100, "name": 300}
MAX_PRICE = Decimal(10) ** 14
PRICE_STEP = Decimal("0.0001")


class CatalogError(Exception):
    """The file cannot be imported; the message starts with `line N:` when a row is at fault."""


@dataclass(frozen=True)
class ProductRow:
    retailer_id: str
    name: str
    price: Decimal
    currency: str


def read_csv(path: Path) -> list[ProductRow]:
    """Validate the whole file before anything is written."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _rows(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(f"cannot read {path}: {error}") from None


def _rows(reader: "Reader") -> list[ProductRow]:
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != HEADER:
        raise CatalogError(f"line 1: the header must be exactly {','.join(HEADER)}")
    rows: list[ProductRow] = []
    first_line: dict[str, int] = {}
    ended = reader.line_num
    for fields in reader:
        # A quoted field may span lines: a record starts on the line after the previous one ended.
        line, ended = ended + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        row = _row(line, fields)
        if row.retailer_id in first_line:
            raise CatalogError(
                f"line {line}: retailer_id {row.retailer_id!r} repeats line {first_line[row.retailer_id]}"
            )
        first_line[row.retailer_id] = line
        rows.append(row)
    return rows


def _row(line: int, fields: list[str]) -> ProductRow:
    if len(fields) != len(HEADER):
        raise CatalogError(f"line {line}: expected {len(HEADER)} fields, found {len(fields)}")
    retailer_id, name, price, currency = fields
    try:
        return ProductRow(
            check_text("retailer_id", retailer_id),
            check_text("name", name),
            parse_price(price),
            parse_currency(currency),
        )
    except ValueError as error:
        raise CatalogError(f"line {line}: {error}") from None


# One check per field, shared by this import and the REST API (api/schemas.py): each returns the value to
# store, or raises ValueError saying why it cannot be stored.


def check_text(column: str, value: str) -> str:
    """retailer_id or name, stripped: not empty, and no longer than its column holds."""
    value = value.strip()
    if not value:
        raise ValueError(f"{column} is empty")
    if len(value) > MAX_LENGTH[column]:
        raise ValueError(f"{column} is longer than {MAX_LENGTH[column]} characters")
    return value


def parse_price(text: str) -> Decimal:
    """A price written as a decimal number, read exactly: at least 0, below MAX_PRICE, at most 4 places."""
    text = text.strip()
    if not text:
        raise ValueError("price is empty")
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"price {text!r} is not a decimal number") from None
    if not price.is_finite() or price < 0 or price >= MAX_PRICE:
        raise ValueError(f"price {text!r} must be at least 0 and below {MAX_PRICE:,}")
    if price != price.quantize(PRICE_STEP):
        raise ValueError(f"price {text!r} has more than 4 decimal places")
    return price


def parse_currency(text: str) -> str:
    """An ISO 4217 code, in capitals."""
    currency = text.strip().upper()
    if currency not in ISO_4217:
        raise ValueError(f"currency {text.strip()!r} is not an ISO 4217 code")
    return currency


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int


def import_catalog(db: Database, phone_number_id: str, catalog_id: str, path: Path) -> ImportSummary:
    rows = read_csv(path)
    with db.session() as session:
        tenant_id = session.scalar(
            select(WhatsAppBusinessSettings.tenant_id).where(
                WhatsAppBusinessSettings.phone_number_id == phone_number_id
            )
        )
        if tenant_id is None:
            raise CatalogError(
                f"no tenant has phone number id {phone_number_id}: add it with `wahooks tenants add`"
            )
        catalogs = WhatsAppCatalog.__table__
        catalog = upsert(dialect_of(session), catalogs).values(tenant_id=tenant_id, catalog_id=catalog_id)
        stmt = catalog.on_conflict_do_update(
            index_elements=["tenant_id", "catalog_id"], set_={"updated_at": func.now()}
        ).returning(catalogs.c.id)
        catalog_pk = session.execute(stmt).scalar_one()
        existing = set(
            session.scalars(
                select(WhatsAppProduct.retailer_id).where(WhatsAppProduct.catalog_id == catalog_pk)
            )
        )
        if rows:
            products = WhatsAppProduct.__table__
            product = upsert(dialect_of(session), products)
            stmt = product.on_conflict_do_update(
                index_elements=["catalog_id", "retailer_id"],
                set_={c: product.excluded[c] for c in ("name", "price", "currency")}
                | {"updated_at": func.now()},
            ).returning(products.c.id)
            session.execute(stmt, [{"catalog_id": catalog_pk, **asdict(r)} for r in rows])
    created = sum(r.retailer_id not in existing for r in rows)
    return ImportSummary(created=created, updated=len(rows) - created)
