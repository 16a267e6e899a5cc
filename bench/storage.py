"""bench/storage: PostgreSQL bytes per event in each table after 100,000 events, and what pruning costs.

sizes  For each corpus (--corpus; both by default), a throwaway database is filled by the real path:
       bodies pushed into a private Redis inbox as the web app does, drained by a worker in this process
       (burst mode), until about --events events are stored (single: one inbound text per body; mixed: the
       worker benchmark's corpus, 70% single-update bodies and 30% batches of 10 to 100 updates). After a
       VACUUM ANALYZE, each table's pg_total_relation_size (heap + TOAST + indexes) is divided by the
       events stored. The baseline is the raw bodies' own bytes per event.
prune  After `sizes` (single corpus: one webhook_events row an event), every stored body is made 100 days
       old and pruned in batches of --batch with `wahooks prune`'s code while a `wahooks worker` process
       drains --prune-bodies fresh single-message bodies; the same drain alone, just before, is the
       baseline. Reported: rows deleted per second,
       the drain's events/s with and without the prune beside it, and how often (pg_stat_activity sampled
       every 5 ms) one of the worker's statements waited for a lock.

Run from the repository root: .venv/bin/python bench/storage.py [--corpus single|mixed] [--events 100000]
[--part sizes|prune|all]
"""

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg2

from benchlib import (
    ROOT,
    BenchError,
    base_env,
    entry_point,
    load_average,
    private_redis,
    procfile_command,
    running,
    start,
    table,
    throwaway_database,
    venv_executable,
    wait_until,
)
from cli.catalog import import_catalog
from cli.migrate import upgrade
from cli.prune import prune
from cli.tenants import NewTenant, add
from meta_payloads import CATALOG_ID, PHONE_NUMBER_ID, Corpus, single_message_corpus, worker_corpus
from models.db import Database
from runtime import logs
from runtime.config import WorkerConfig
from runtime.inbox import Inbox
from workers import runner, services

# Events per body of the mixed corpus (52,728 events in 3,000 bodies), to size it for --events.
MIXED_EVENTS_PER_BODY = 52_728 / 3_000
PUSH_CHUNK = 1000
SAMPLE_SECONDS = 0.005
QUEUE = "bench-storage"
SIZES = """
SELECT c.relname,
       pg_total_relation_size(c.oid),
       pg_relation_size(c.oid),
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       pg_indexes_size(c.oid),
       s.n_live_tup
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind = 'r' AND s.n_live_tup > 0
ORDER BY pg_total_relation_size(c.oid) DESC
"""
PROCESSED_TODAY = "SELECT count(*) FROM webhook_events WHERE processed_at > now() - interval '1 day'"
# The worker's statements waiting for a lock, seen from another session.
LOCK_WAITS = """
SELECT left(query, 40) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["single", "mixed"], action="append")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--part", choices=["sizes", "prune", "all"], default="all")
    parser.add_argument("--batch", type=int, default=1000, help="rows a prune transaction deletes")
    parser.add_argument("--prune-bodies", type=int, default=5000, help="bodies drained beside the prune")
    args = parser.parse_args()
    logs.configure(level="WARNING")
    print(f"bench/storage, {load_average()}")
    corpora = args.corpus or (["single"] if args.part == "prune" else ["single", "mixed"])
    for name in corpora:
        corpus = make_corpus(name, args.events)
        with (
            tempfile.TemporaryDirectory() as workdir,
            throwaway_database() as database_url,
            private_redis(Path(workdir)) as redis_url,
        ):
            fill(database_url, redis_url, corpus)
            if args.part != "prune":
                report_sizes(database_url, name, corpus)
            if args.part != "sizes" and name == "single":
                measure_prune(database_url, redis_url, Path(workdir), args)
    return 0


def make_corpus(name: str, events: int) -> Corpus:
    if name == "single":
        return single_message_corpus(events)
    return worker_corpus(round(events / MIXED_EVENTS_PER_BODY))


def fill(database_url: str, redis_url: str, corpus: Corpus) -> None:
    """Store the corpus by the real path: the inbox, then a worker in this process until it is empty."""
    upgrade(database_url)
    db = Database(database_url)
    add(db, NewTenant("Acme", PHONE_NUMBER_ID, None, None))
    import_catalog(db, PHONE_NUMBER_ID, CATALOG_ID, ROOT / "tests" / "fixtures" / "catalog_a.csv")
    svc = services.Services.build(WorkerConfig(database_url, redis_url, queue=QUEUE), db=db)
    services.install(svc)
    for first in range(0, len(corpus.bodies), PUSH_CHUNK):
        svc.inbox.push_many(corpus.bodies[first : first + PUSH_CHUNK])
    started = time.perf_counter()
    runner.run(svc, burst=True)
    print(f"\nstored {corpus.expected.events} events in {len(corpus.bodies)} bodies"
          f" in {time.perf_counter() - started:.0f} s")  # fmt: skip
    db.dispose()


def report_sizes(database_url: str, name: str, corpus: Corpus) -> None:
    events = corpus.expected.events
    with connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(SIZES)
        sizes = cursor.fetchall()
        cursor.execute("SELECT count(*), sum(octet_length(body)) FROM webhook_events")
        bodies, body_bytes = cursor.fetchone()
    raw = sum(len(b) for b in corpus.bodies)
    rows = [
        (
            relname,
            f"{live:,}",
            f"{live / events:.2f}",
            f"{total / events:.0f}",
            f"{heap / events:.0f}",
            f"{toast / events:.0f}",
            f"{indexes / events:.0f}",
        )
        for relname, total, heap, toast, indexes, live in sizes
    ]
    total = sum(s[1] for s in sizes)
    rows.append(("all tables", "", "", f"{total / events:.0f}", "", "", ""))
    print(f"{name} corpus: {events:,} events in {len(corpus.bodies):,} bodies, {raw / events:.0f} raw body"
          f" bytes an event ({body_bytes / bodies:.0f} a body, {bodies:,} webhook_events rows)")  # fmt: skip
    headers = ("table", "rows", "rows/event", "bytes/event", "heap", "TOAST", "indexes")
    print(table(headers, rows))
    print(f"all tables / raw bodies: {total / raw:.2f}x;"
          f" {total / events * 1000 / 2**20:.1f} MiB per 1,000 events")  # fmt: skip


@contextmanager
def connect(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


# Pruning beside a writing worker


@dataclass
class Drain:
    events: int
    seconds: float
    lock_waits: Counter[str]
    samples: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def measure_prune(database_url: str, redis_url: str, workdir: Path, args: argparse.Namespace) -> None:
    with connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("UPDATE webhook_events SET processed_at = processed_at - interval '100 days'")
        cursor.execute("SELECT count(*) FROM webhook_events")
        (old,) = cursor.fetchone()
        cursor.execute("VACUUM ANALYZE webhook_events")
    alone = drain_beside(database_url, redis_url, workdir, fresh(args.prune_bodies, "ALONE"), None)
    db = Database(database_url)
    pruned: dict[str, float] = {}

    def pruning() -> None:
        started = time.perf_counter()
        pruned["rows"] = prune(db, timedelta(days=90), batch=args.batch).deleted
        pruned["seconds"] = time.perf_counter() - started

    beside = drain_beside(database_url, redis_url, workdir, fresh(args.prune_bodies, "BESIDE"), pruning)
    db.dispose()
    if pruned.get("rows") != old:
        raise BenchError(f"prune deleted {pruned.get('rows')} rows of {old} old ones")
    rate = old / pruned["seconds"]
    print(f"\nprune, batches of {args.batch}: {old:,} rows in {pruned['seconds']:.2f} s = {rate:,.0f} rows/s,"
          f" while a worker drained {args.prune_bodies} bodies")  # fmt: skip
    rows = [
        (label, f"{d.rate:.0f}", f"{d.samples}", f"{sum(d.lock_waits.values())}",
         ", ".join(f"{q!r} {n}" for q, n in d.lock_waits.most_common(3)) or "-")
        for label, d in (("worker alone", alone), ("worker + prune", beside))
    ]  # fmt: skip
    print(table(("drain", "events/s", "samples", "lock waits seen", "waiting statements"), rows))
    print(f"drain rate beside the prune / alone: {beside.rate / alone.rate:.2f}x")


def scalar(cursor: psycopg2.extensions.cursor, sql: str) -> int:
    cursor.execute(sql)
    return int(cursor.fetchone()[0])


def fresh(count: int, tag: str) -> Corpus:
    """Single-message bodies whose wamids no other corpus of this run has (the generator numbers them from 1
    under a fixed tag)."""
    corpus = single_message_corpus(count, seed=len(tag))
    corpus.bodies = [body.replace(b"HBgLSINGLE-", f"HBgL{tag}-".encode()) for body in corpus.bodies]
    return corpus


def drain_beside(
    database_url: str, redis_url: str, workdir: Path, corpus: Corpus, beside: Callable[[], None] | None
) -> Drain:
    """A `wahooks worker` process drains the corpus (beside runs in a thread meanwhile); pg_stat_activity is
    sampled for lock waits until every body is processed."""
    import redis

    store = redis.Redis.from_url(redis_url)
    Inbox(store, QUEUE).push_many(corpus.bodies)
    env = base_env(DATABASE_URL=database_url, REDIS_URL=redis_url, WAHOOKS_QUEUE=QUEUE)
    argv = venv_executable(procfile_command("worker", os.environ))
    waits: Counter[str] = Counter()
    samples = 0
    with connect(database_url) as conn, conn.cursor() as cursor:
        before = scalar(cursor, PROCESSED_TODAY)
        target = before + len(corpus.bodies)
        helper = threading.Thread(target=beside) if beside else None
        child = start("worker", argv, env, workdir / f"worker-{time.monotonic_ns()}.log")
        with running([child]):
            # The clock (and the prune) start once the worker has stored its first batch: start-up aside.
            wait_until(lambda: scalar(cursor, PROCESSED_TODAY) > before, 60, "the worker's first batch", 0.01)
            started = time.monotonic()
            if helper:
                helper.start()
            while True:
                cursor.execute(LOCK_WAITS)
                waits.update(q for (q,) in cursor.fetchall())
                samples += 1
                if samples % 20 == 0 and scalar(cursor, PROCESSED_TODAY) >= target:
                    break
                if time.monotonic() - started > 600:
                    raise BenchError(f"the drain did not finish in 600 s\n{child.log_tail()}")
                time.sleep(SAMPLE_SECONDS)
            seconds = time.monotonic() - started
            if helper:
                helper.join()
    return Drain(corpus.expected.events, seconds, waits, samples)


if __name__ == "__main__":
    entry_point(main, "bench/storage")
