"""bench/analytics_locks: lock waits and bloat on the daily analytics rows, K workers on one tenant and day.

Every batch a worker commits adds its counts to the same `whatsapp_analytics` row (one tenant, one UTC
date), so concurrent workers queue for that row's lock. N bodies for tenant A (--corpus: single, one
inbound text each, Meta's most common POST and the most transactions per event; or mixed) are pushed into
a private Redis inbox as the web app does, then drained by K `wahooks worker` processes (the Procfile's
line) on a throwaway database whose sessions run with `log_lock_waits = on` and `deadlock_timeout` =
--deadlock-timeout-ms, so that PostgreSQL logs every lock wait longer than that. The single corpus's
bodies span 36 hours, so the workers share one date's row at a time (two rows in all).

Reported, for K = 1 (the baseline: nobody to wait for) and K = --workers:
  - lock waits from the server log (read from where it stood before the run, lines of this database only):
    how many, and their total and longest duration, by the relation PostgreSQL names in the wait's
    context (the analytics row, a message row, an index...);
  - pg_stat_activity sampled every 5 ms: the share of samples of a busy worker session waiting for a lock,
    by statement;
  - per hot table (pg_stat_user_tables after the run): updates, how many were HOT (no index entry
    written), dead tuples left, and its size in pages;
  - events/s over the drain (start-up included).
--fillfactor F sets `whatsapp_analytics`'s fillfactor first (to compare with the migration's setting).

Run from the repository root (root, to read /var/log/postgresql): .venv/bin/python bench/analytics_locks.py
[--corpus single|mixed] [--bodies 20000] [--workers 4] [--fillfactor F]
"""

import argparse
import os
import re
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import redis

import benchlib
import meta_payloads
from benchlib import (
    BenchError,
    base_env,
    entry_point,
    load_average,
    prepare_database,
    private_redis,
    procfile_command,
    running,
    start_many,
    throwaway_database,
    venv_executable,
)
from meta_payloads import NAMES, single_message_corpus, worker_corpus
from runtime.inbox import Inbox

SERVER_LOG = Path(os.environ.get("BENCH_POSTGRES_LOG", "/var/log/postgresql/postgresql-15-main.log"))
QUEUE = "bench-analytics-locks"
SAMPLE_SECONDS = 0.005
HOT_TABLES = ("whatsapp_analytics", "whatsapp_pricing_daily", "whatsapp_contacts", "whatsapp_messages")
PROCESSED = "SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL"
# Worker sessions of this database (not this one): busy ones, and those of them waiting for a lock.
ACTIVITY = """
SELECT wait_event_type = 'Lock', left(regexp_replace(query, '\\s+', ' ', 'g'), 36)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
"""
TABLE_STATS = """
SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup, pg_relation_size(relid) / 8192
FROM pg_stat_user_tables WHERE relname = ANY(%s) ORDER BY relname
"""
# "process 123 acquired ShareLock on transaction 456 after 12.345 ms", then its CONTEXT line.
ACQUIRED = re.compile(r"\[(\d+)\] \S+ LOG:  process \d+ acquired (\w+) on (\w+) .* after ([\d.]+) ms")
CONTEXT = re.compile(r"\[(\d+)\] \S+ CONTEXT:  (?:while )?(\w+(?: \w+)*?) .*relation \"(\w+)\"")


@dataclass
class Run:
    workers: int
    events: int
    seconds: float
    waits: dict[str, list[float]] = field(default_factory=dict)  # relation -> durations (ms)
    busy_samples: int = 0
    waiting: Counter[str] = field(default_factory=Counter)  # statement -> samples waiting for a lock
    tables: list[tuple[object, ...]] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["single", "mixed"], default="single")
    parser.add_argument("--bodies", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--deadlock-timeout-ms", type=int, default=5)
    parser.add_argument("--fillfactor", type=int, help="set on whatsapp_analytics before the run")
    parser.add_argument(
        "--customers",
        type=int,
        default=5000,
        help="distinct customers writing (the corpora's 5,000 by default)",
    )
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if not os.access(SERVER_LOG, os.R_OK):
        raise BenchError(f"cannot read the server log {SERVER_LOG} (BENCH_POSTGRES_LOG): run as root")
    meta_payloads.Generator.customer = lambda self: customer(self, args.customers)  # type: ignore[method-assign]
    make = single_message_corpus if args.corpus == "single" else worker_corpus
    corpus = make(args.bodies)
    print(f"bench/analytics_locks: {args.bodies} {args.corpus} bodies, {corpus.expected.events} events,"
          f" {args.customers} customers;"
          f" {load_average()}")  # fmt: skip
    runs = [measure(args, corpus.bodies, corpus.expected.events, k) for k in (1, args.workers)]
    for run in runs:
        report(run)
    one, many = runs
    scaling = many.events / many.seconds / (one.events / one.seconds)
    print(f"\nK={many.workers} / K=1: events/s {scaling:.2f}x;"
          f" lock waits over {args.deadlock_timeout_ms} ms: {sum(map(len, one.waits.values()))}"
          f" -> {sum(map(len, many.waits.values()))}")  # fmt: skip
    return 0


def customer(generator: meta_payloads.Generator, customers: int) -> tuple[str, str]:
    """A customer out of `customers`: with many, concurrent batches rarely share one (and its row lock)."""
    n = generator.random.randrange(customers)
    return f"1555{n:08d}", NAMES[n % len(NAMES)]


def measure(args: argparse.Namespace, bodies: list[bytes], events: int, workers: int) -> Run:
    with (
        tempfile.TemporaryDirectory() as workdir,
        throwaway_database() as database_url,
        private_redis(Path(workdir)) as redis_url,
    ):
        prepare_database(database_url)
        conn = psycopg2.connect(database_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                name = conn.info.dbname
                cursor.execute(f"ALTER DATABASE {name} SET log_lock_waits = on")
                cursor.execute(f"ALTER DATABASE {name} SET deadlock_timeout = '{args.deadlock_timeout_ms}ms'")
                if args.fillfactor:
                    cursor.execute(f"ALTER TABLE whatsapp_analytics SET (fillfactor = {args.fillfactor})")
            return drain(args, conn, database_url, redis_url, Path(workdir), bodies, events, workers)
        finally:
            conn.close()


def drain(
    args: argparse.Namespace,
    conn: psycopg2.extensions.connection,
    database_url: str,
    redis_url: str,
    workdir: Path,
    bodies: list[bytes],
    events: int,
    workers: int,
) -> Run:
    Inbox(redis.Redis.from_url(redis_url), QUEUE).push_many(bodies)
    env = base_env(DATABASE_URL=database_url, REDIS_URL=redis_url, WAHOOKS_QUEUE=QUEUE, LOG_LEVEL="WARNING")
    argv = venv_executable(procfile_command("worker", os.environ))
    log_offset = SERVER_LOG.stat().st_size
    run = Run(workers, events, 0.0)
    started = time.monotonic()
    children = start_many("worker", workers, argv, env, workdir, f"k{workers}")
    with running(children), conn.cursor() as cursor:
        while True:
            cursor.execute(ACTIVITY)
            for waiting, statement in cursor.fetchall():
                run.busy_samples += 1
                if waiting:
                    run.waiting[statement] += 1
            cursor.execute(PROCESSED)
            if cursor.fetchone()[0] >= len(bodies):
                break
            if time.monotonic() - started > args.timeout:
                raise BenchError(f"not drained after {args.timeout:.0f} s\n{children[0].log_tail()}")
            time.sleep(SAMPLE_SECONDS)
        run.seconds = time.monotonic() - started
    time.sleep(1.0)  # the workers' sessions flush their table statistics as they end
    with conn.cursor() as cursor:
        cursor.execute(TABLE_STATS, (list(HOT_TABLES),))
        run.tables = cursor.fetchall()
    run.waits = lock_waits(log_offset, conn.info.dbname)
    return run


def lock_waits(offset: int, database: str) -> dict[str, list[float]]:
    """Each logged wait's duration, by the relation its CONTEXT line names ("?" when it names none)."""
    with SERVER_LOG.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    waits: defaultdict[str, list[float]] = defaultdict(list)
    pending: dict[str, float] = {}
    for line in text.splitlines():
        if f"@{database} " not in line:
            continue
        if acquired := ACQUIRED.search(line):
            pid = acquired[1]
            if pid in pending:
                waits["?"].append(pending.pop(pid))
            pending[pid] = float(acquired[4])
        elif (context := CONTEXT.search(line)) and context[1] in pending:
            waits[f"{context[3]} ({context[2]})"].append(pending.pop(context[1]))
    for duration in pending.values():
        waits["?"].append(duration)
    return dict(waits)


def report(run: Run) -> None:
    rate = run.events / run.seconds
    print(f"\nK={run.workers}: {run.events} events in {run.seconds:.2f} s = {rate:.0f} events/s")
    rows = [
        (relation, len(durations), f"{sum(durations):.0f}", f"{max(durations):.1f}")
        for relation, durations in sorted(run.waits.items(), key=lambda item: -sum(item[1]))
    ]
    headers = ("lock waits logged, by relation (context)", "waits", "total ms", "longest ms")
    print(benchlib.table(headers, rows or [("none", 0, 0, 0)]))
    waiting = sum(run.waiting.values())
    print(f"sampled busy worker sessions: {run.busy_samples}, waiting for a lock: {waiting}"
          f" ({waiting / max(run.busy_samples, 1):.1%})")  # fmt: skip
    for statement, n in run.waiting.most_common(4):
        print(f"  {n:6}  {statement}")
    print(benchlib.table(("table", "inserts", "updates", "HOT updates", "dead tuples", "pages"), run.tables))


if __name__ == "__main__":
    entry_point(main, "bench/analytics_locks")
