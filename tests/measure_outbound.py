"""Measure by hand (not a test): a 10,000-product catalog sync's time and peak memory, and the outbound
queue's throughput, against the fake Graph API on loopback and a throwaway PostgreSQL database.

    .venv/bin/python -m tests.measure_outbound [--products 10000] [--requests 2000] [--workers 1 2]

Needs the PostgreSQL and Redis the tests use (tests/services.py); run it on a quiet machine.
"""

import argparse
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import redis
from rq import Queue
from sqlalchemy import func, select

from cli.migrate import upgrade
from models import OutboundRequest
from models.db import Database
from outbound import catalog, hook
from outbound.graph import GraphClient
from outbound.intents import utcnow
from tests import services as real
from tests.conftest import TENANT_A, empty_tables, seed
from tests.fake_graph import FakeGraph, fake_graph
from tests.test_catalog_sync import product
from throwaway import start, stop_all

CATALOG = "300000000000077"


def measure_sync(graph: FakeGraph, db: Database, tenant_id: int, count: int) -> None:
    graph.catalog(CATALOG, count, product)
    client = GraphClient(graph.url, "EAAG-measure")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    summary = catalog.sync(db, client, tenant_id, [CATALOG])
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"sync of {count} products: {seconds:.2f} s ({count / seconds:,.0f} products/s), {summary.line()}")
    print(f"  peak traced Python memory {peak / 2**20:.1f} MiB (fake server's pages included)")
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"  max RSS grew by {grown:.1f} MiB")
    started = time.perf_counter()
    again = catalog.sync(db, client, tenant_id, [CATALOG])
    print(f"  again, nothing changed: {time.perf_counter() - started:.2f} s, {again.line()}")


def measure_queue(
    graph: FakeGraph, db: Database, url: str, redis_url: str, tenant_id: int, count: int, workers: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(real.CLAIM_KEY, "claimed")
    queue = Queue("measure-outbound", connection=client)
    with db.session() as session:
        session.execute(OutboundRequest.__table__.delete())
        session.execute(
            OutboundRequest.__table__.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "kind": "mark_read",
                    "subject_wamid": f"wamid.M{workers}-{i}",
                    "state": "pending",
                    "enqueued_at": utcnow(),  # as the worker's hook leaves them: the sweeper leaves them be
                }
                for i in range(count)
            ],
        )
        ids = list(session.scalars(select(OutboundRequest.id)))
    hook.enqueue_requests(queue, ids)
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "WAHOOKS_QUEUE": "measure",
        "WHATSAPP_GRAPH_URL": graph.url,
        "WHATSAPP_ACCESS_TOKEN": "EAAG-measure",
        "LOG_LEVEL": "WARNING",
    }
    logs = Path(tempfile.mkdtemp(prefix="wahooks-measure-"))
    cpu_before = _children_cpu()
    started = time.perf_counter()
    children = [
        start(
            f"w{n}",
            [sys.executable, "-m", "cli.main", "outbound", "worker", "--burst"],
            env,
            logs / f"w{n}.log",
        )
        for n in range(workers)
    ]
    for child in children:
        child.process.wait(timeout=600)
    seconds = time.perf_counter() - started
    stop_all(children)
    with db.session() as session:
        done = session.scalar(select(func.count()).where(OutboundRequest.state == "done"))
    print(
        f"outbound queue, {workers} worker process(es): {done}/{count} mark-read requests done"
        f" in {seconds:.2f} s ({count / seconds:,.0f}/s, start-up included);"
        f" the workers' CPU: {(_children_cpu() - cpu_before) / count * 1000:.1f} ms a request"
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake server's access log
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    url = real.create_postgres_database()
    redis_url = real.claim_redis_db()
    try:
        upgrade(url)
        db = Database(url)
        empty_tables(db)
        seed(db)
        with db.session() as session:
            from models import WhatsAppBusinessSettings as Settings

            tenant_id = session.scalar(
                select(Settings.tenant_id).where(Settings.phone_number_id == TENANT_A.phone_number_id)
            )
        assert tenant_id is not None
        with fake_graph() as graph:
            measure_sync(graph, db, tenant_id, args.products)
            for workers in args.workers:
                measure_queue(graph, db, url, redis_url, tenant_id, args.requests, workers)
        db.dispose()
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        real.drop_postgres_database(url)


if __name__ == "__main__":
    main()
