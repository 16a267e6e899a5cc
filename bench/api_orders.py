"""The REST API's order listing on 100,000 orders of one tenant (and as many of another): p50/p99 per request.

Run by hand, never in CI: `.venv/bin/python bench/api_orders.py [--orders N] [--requests N]`. It builds a
throwaway database at the latest migration, writes the orders with COPY (statuses, times over a year and
customers spread like a shop's), and times `GET /api/v1/orders` through the app in-process (key check, tenant
session, query, JSON) for each kind of listing a back office makes. Then it puts back the indexes the orders
had before migration 0003 (tenant_id, wa_id) in place of 0003's composite ones and times the same requests,
and prints each plan's first lines, so the difference the indexes make is measured in the same run.
"""

import argparse
import io
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from api import keys
from api.app import create_app
from benchlib import entry_point, load_average, table, throwaway_database
from cli import tenants
from cli.migrate import upgrade
from models.db import Database

TENANT_A = tenants.NewTenant("Acme", "100000000000001")
TENANT_B = tenants.NewTenant("Bravo", "100000000000002")
# How a shop's orders spread over the back office's statuses: most are done with.
STATUS_WEIGHTS = {"received": 5, "confirmed": 5, "shipped": 10, "delivered": 75, "cancelled": 5}
CUSTOMERS = 5_000
WARMUP = 20
BEFORE_0003 = (
    "DROP INDEX ix_whatsapp_orders_tenant_id_ordered_at_id",
    "DROP INDEX ix_whatsapp_orders_tenant_id_status_ordered_at_id",
    "DROP INDEX ix_whatsapp_orders_tenant_id_wa_id_ordered_at_id",
    "CREATE INDEX ix_whatsapp_orders_tenant_id ON whatsapp_orders (tenant_id)",
    "CREATE INDEX ix_whatsapp_orders_wa_id ON whatsapp_orders (wa_id)",
    "ANALYZE whatsapp_orders",
)


def fill(db: Database, tenant_ids: list[int], per_tenant: int) -> None:
    """per_tenant orders for each tenant, over the last 365 days, by COPY (one statement per tenant)."""
    rng = random.Random(13)
    now = datetime.now(UTC)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        for tenant_id in tenant_ids:
            rows = io.StringIO()
            for n in range(per_tenant):
                ordered = now - timedelta(seconds=rng.randrange(365 * 86400))
                status = rng.choices(statuses, weights)[0]
                customer = f"1555{rng.randrange(CUSTOMERS):07d}"
                total = f"{rng.randrange(100, 50_000) / 100:.2f}"
                rows.write(
                    f"{tenant_id}\twamid.BENCH-{tenant_id}-{n}\t{customer}\t300000000000001\t{total}\tUSD"
                    f"\t{status}\t{ordered.isoformat()}\n"
                )
            rows.seek(0)
            cursor.copy_expert(
                "COPY whatsapp_orders (tenant_id, wamid, wa_id, catalog_id, total_amount, currency, status,"
                " ordered_at) FROM STDIN",
                rows,
            )
        connection.commit()
        cursor.execute("ANALYZE whatsapp_orders")
        connection.commit()
    finally:
        connection.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def time_requests(call: Callable[[], int], count: int) -> tuple[float, float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        status = call()
        samples.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"a request answered {status}")
    return percentiles(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders per tenant (default 100,000)")
    parser.add_argument("--requests", type=int, default=400, help="timed requests per listing (default 400)")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load_average()}")
    with throwaway_database() as url:
        upgrade(url)
        db = Database(url)
        ids = [tenants.add(db, TENANT_A), tenants.add(db, TENANT_B)]
        started = time.monotonic()
        fill(db, ids, args.orders)
        print(f"{args.orders:,} orders for each of 2 tenants written in {time.monotonic() - started:.1f} s")
        key = keys.create(db, TENANT_A.phone_number_id, "bench").key
        client = create_app(db).test_client()
        bearer = {"Authorization": f"Bearer {key}"}

        def listing(query: str) -> Callable[[], int]:
            return lambda: client.get(f"/api/v1/orders{query}", headers=bearer).status_code

        first = client.get("/api/v1/orders?limit=50", headers=bearer).json
        deep = first
        for _ in range(40):  # 2,000 orders down: a client paging through
            deep = client.get(f"/api/v1/orders?limit=50&cursor={deep['next_cursor']}", headers=bearer).json
        week = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
        customer = first["data"][0]["wa_id"]
        queries = {
            "newest 50": "?limit=50",
            "page 42 (cursor)": f"?limit=50&cursor={deep['next_cursor']}",
            "status=received": "?limit=50&status=received",
            "status=cancelled, page 2": "?limit=50&status=cancelled&cursor="
            + client.get("/api/v1/orders?limit=50&status=cancelled", headers=bearer).json["next_cursor"],
            "last 7 days": f"?limit=50&since={week}",
            "one customer": f"?limit=50&wa_id={customer}",
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in queries}
        plans = []
        for setup in ((), BEFORE_0003):
            with db.engine.begin() as connection:
                for statement in setup:
                    connection.execute(text(statement))
                plans.append(
                    {name: _plan(connection, ids[0], customer, where) for name, where in PLANS.items()}
                )
            for name, query in queries.items():
                results[name].append(time_requests(listing(query), args.requests))
        rows = [
            (name, f"{now[0]:.2f}", f"{now[1]:.2f}", f"{before[0]:.2f}", f"{before[1]:.2f}")
            for name, (now, before) in results.items()
        ]
        print(f"\nGET /api/v1/orders, {args.requests} requests each after {WARMUP} warm-up, in-process, ms:")
        print(table(("listing", "p50", "p99", "p50 before 0003", "p99 before 0003"), rows))
        for label, plan in zip(
            ("with 0003's indexes", "with 0001's tenant_id and wa_id indexes"), plans, strict=True
        ):
            for name, lines in plan.items():
                print(f"\n{name}, {label}:\n{lines}")
        db.dispose()
    return 0


# The two listings whose plans tell the indexes apart, as the API sends them (tenant criterion included).
PLANS = {
    "newest 50": "",
    "one customer": " AND wa_id = :customer",
}


def _plan(connection: Connection, tenant_id: int, customer: str, where: str) -> str:
    """The first lines of a listing's plan."""
    found = connection.execute(
        text(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM whatsapp_orders WHERE tenant_id = :t"
            f"{where} ORDER BY ordered_at DESC, id DESC LIMIT 51"
        ),
        {"t": tenant_id, "customer": customer},
    )
    return "\n".join(f"  {line}" for (line,) in found.all()[:5])


if __name__ == "__main__":
    entry_point(main, "api_orders")
