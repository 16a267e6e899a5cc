"""bench/worker: the Procfile's worker against a minimal RQ baseline, draining the same realistic bodies.

N bodies for tenant A, one of two corpora (--corpus):
  mixed   70% single-update, 30% batches of 10 to 100 updates: inbound texts, media, orders,
          reactions..., and sent/delivered/read/failed statuses of outbound messages;
  single  one inbound text message per body, Meta's most common POST;
with unique wamids, are drained by:

  ours      K `wahooks worker` processes (the Procfile's worker: line). The bodies are first pushed
            into the Redis inbox exactly as the web app does; the clock runs from starting the
            processes until every body has a webhook_events row with processed_at set (polled every
            50 ms): start-up included, nothing subtracted.
  baseline  K `rq worker -w rq.SimpleWorker --burst` processes, one job per body enqueued beforehand
            (not timed), each job a json.loads and one bulk INSERT ... ON CONFLICT (wamid) DO NOTHING
            into whatsapp_messages (bench/baseline_job.py); the clock stops when every job finished.

for K = 1 and 2, each round on fresh table contents. Events = messages + statuses of all bodies.
Reported per system and K: events/s over the wall time, and over the steady state (the first to
the last body's transaction, from the database's timestamps), medians of the rounds; the
ratios ours/baseline and the 1 -> 2 process scaling. After each run of ours the database is
checked against the generator's counts (rows, statuses, orders, analytics sums, outcomes).

A throwaway PostgreSQL database (migrated, tenant A, tests/fixtures/catalog_a.csv) and a private
redis-server are created, and dropped/stopped at the end.
Run from the repository root: .venv/bin/python bench/worker.py [--corpus mixed --bodies 3000 --rounds 3]
"""

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg2
import redis
from psycopg2.extensions import connection as Connection
from rq import Queue

from benchlib import (
    BenchError,
    Child,
    base_env,
    entry_point,
    load_average,
    log_directory,
    median,
    prepare_database,
    private_redis,
    procfile_command,
    running,
    start_many,
    table,
    throwaway_database,
    venv_executable,
    verdict,
)
from meta_payloads import Corpus, single_message_corpus, worker_corpus
from runtime.inbox import Inbox

CORPORA = {"mixed": worker_corpus, "single": single_message_corpus}
QUEUE_OURS = "bench-ours"
QUEUE_BASELINE = "bench-baseline"
BASELINE_JOB = "baseline_job.insert_message_rows"
# Everything a run writes; tenants, their settings and the catalog stay.
RUN_TABLES = (
    "webhook_events",
    "whatsapp_order_items",
    "whatsapp_orders",
    "whatsapp_message_statuses",
    "whatsapp_messages",
    "whatsapp_analytics",
    "whatsapp_pricing_daily",
    "whatsapp_contacts",
)
POLL_SECONDS = 0.05
PROCESSED_BODIES = "SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL"
FAILED_BODIES = "SELECT count(*) FROM webhook_events WHERE outcome = 'failed'"
# Ours / the baseline at the same process count (wall), at least: the throughput issue's targets.
TARGET_RATIO = {"mixed": 2.0, "single": 5.0}


@dataclass
class Run:
    system: str
    processes: int
    round: int
    events: int
    wall_s: float
    steady_s: float
    first_s: float  # from starting the processes to the first body's transaction
    problems: list[str] = field(default_factory=list)

    @property
    def wall_rate(self) -> float:
        return self.events / self.wall_s

    @property
    def steady_rate(self) -> float:
        return self.events / self.steady_s if self.steady_s > 0 else float("nan")


@dataclass
class Context:
    args: argparse.Namespace
    corpus: Corpus
    database_url: str
    redis_url: str
    db: Connection
    store: redis.Redis
    logs: Path


# Resetting between runs


def reset(context: Context) -> None:
    with context.db.cursor() as cursor:
        # CASCADE: what issue 12 keeps beside a message (its media files, its outbound requests) goes too.
        cursor.execute(f"TRUNCATE {', '.join(RUN_TABLES)} RESTART IDENTITY CASCADE")
        cursor.execute(f"VACUUM ANALYZE {', '.join(RUN_TABLES)}")
    context.store.flushdb()


def scalar(db: Connection, sql: str) -> object:
    with db.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return row[0] if row else None


def span_seconds(db: Connection, column: str, table_name: str, since: float) -> tuple[float, float]:
    """(first transaction to last, start to first transaction) from a timestamp column."""
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT extract(epoch FROM min({column})), extract(epoch FROM max({column})) FROM {table_name}"
        )
        first, last = cursor.fetchone()
    return float(last - first), float(first) - since


# Waiting


def wait_for(
    done: Callable[[], bool], failures: Callable[[], object], children: list[Child], timeout: float, what: str
) -> float:
    """Poll done() every POLL_SECONDS; return the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return time.monotonic()
        failed = failures()
        if failed:
            raise BenchError(f"{what}: {failed} failed\n{children[0].log_tail()}")
        crashed = [c for c in children if not c.alive() and c.process.returncode != 0]
        if crashed:
            raise BenchError(
                f"{crashed[0].name} exited with {crashed[0].process.returncode}:\n{crashed[0].log_tail()}"
            )
        time.sleep(POLL_SECONDS)
    raise BenchError(f"{what}: not done after {timeout:.0f} s\n{children[0].log_tail()}")


# Ours


def run_ours(context: Context, processes: int, round_: int) -> Run:
    bodies = context.corpus.bodies
    inbox = Inbox(context.store, QUEUE_OURS)
    for body in bodies:
        if not inbox.push(body):
            raise BenchError("a generated body was not queued: the corpus has duplicates")
    env = base_env(DATABASE_URL=context.database_url, REDIS_URL=context.redis_url, WAHOOKS_QUEUE=QUEUE_OURS)
    argv = venv_executable(procfile_command("worker", os.environ))
    since, began = time.time(), time.monotonic()
    children = start_many("ours", processes, argv, env, context.logs, f"k{processes}-r{round_}")
    with running(children):
        ended = wait_for(
            lambda: scalar(context.db, PROCESSED_BODIES) == len(bodies),
            lambda: scalar(context.db, FAILED_BODIES),
            children,
            context.args.timeout,
            "ours",
        )
    steady, first = span_seconds(context.db, "processed_at", "webhook_events", since)
    run = Run("ours", processes, round_, context.corpus.expected.events, ended - began, steady, first)
    run.problems = check_ours(context)
    return run


def check_ours(context: Context) -> list[str]:
    """Compare the database with what the generator says every body carries."""
    expected = context.corpus.expected
    db = context.db
    analytics = (
        "SELECT coalesce(sum(messages_received), 0), coalesce(sum(messages_sent), 0),"
        " coalesce(sum(messages_delivered), 0), coalesce(sum(messages_read), 0),"
        " coalesce(sum(messages_failed), 0), coalesce(sum(orders_count), 0),"
        " coalesce(sum(order_revenue), 0) FROM whatsapp_analytics"
    )
    with db.cursor() as cursor:
        cursor.execute(analytics)
        received, sent, delivered, read, failed, orders, revenue = cursor.fetchone()
    checks = {
        "whatsapp_messages rows": (
            scalar(db, "SELECT count(*) FROM whatsapp_messages"),
            expected.message_rows,
        ),
        "inbound rows": (
            scalar(db, "SELECT count(*) FROM whatsapp_messages WHERE direction = 'inbound'"),
            expected.messages,
        ),
        "status rows": (scalar(db, "SELECT count(*) FROM whatsapp_message_statuses"), expected.statuses),
        "orders": (scalar(db, "SELECT count(*) FROM whatsapp_orders"), expected.orders),
        "bodies processed": (
            scalar(db, "SELECT count(*) FROM webhook_events WHERE outcome = 'processed'"),
            expected.bodies,
        ),
        "analytics messages_received": (received, expected.messages),
        "analytics messages_sent": (sent, expected.by_status["sent"]),
        "analytics messages_delivered": (delivered, expected.by_status["delivered"]),
        "analytics messages_read": (read, expected.by_status["read"]),
        "analytics messages_failed": (failed, expected.by_status["failed"]),
        "analytics orders_count": (orders, expected.orders),
        "analytics order_revenue": (Decimal(revenue), expected.order_revenue),
    }
    return [f"{name}: {got} instead of {want}" for name, (got, want) in checks.items() if got != want]


# Baseline


def run_baseline(context: Context, processes: int, round_: int) -> Run:
    bodies = context.corpus.bodies
    queue = Queue(QUEUE_BASELINE, connection=context.store)
    for chunk in chunks(bodies, 500):
        queue.enqueue_many(
            [Queue.prepare_data(BASELINE_JOB, args=(body,), description="baseline insert") for body in chunk]
        )
    if queue.count != len(bodies):
        raise BenchError(f"{queue.count} baseline jobs queued for {len(bodies)} bodies")
    env = base_env(DATABASE_URL=context.database_url)
    rq_worker = ["rq", "worker", "-w", "rq.SimpleWorker", "--burst", "--disable-job-desc-logging"]
    argv = venv_executable([*rq_worker, "--url", context.redis_url, QUEUE_BASELINE])
    finished, failed = queue.finished_job_registry, queue.failed_job_registry
    since, began = time.time(), time.monotonic()
    children = start_many("baseline", processes, argv, env, context.logs, f"k{processes}-r{round_}")
    with running(children):
        ended = wait_for(
            lambda: finished.get_job_count(cleanup=False) == len(bodies),
            lambda: failed.get_job_count(cleanup=False),
            children,
            context.args.timeout,
            "baseline",
        )
    steady, first = span_seconds(context.db, "created_at", "whatsapp_messages", since)
    run = Run("baseline", processes, round_, context.corpus.expected.events, ended - began, steady, first)
    rows = scalar(context.db, "SELECT count(*) FROM whatsapp_messages")
    if rows != context.corpus.expected.message_rows:
        run.problems.append(
            f"whatsapp_messages rows: {rows} instead of {context.corpus.expected.message_rows}"
        )
    return run


def chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start_at in range(0, len(items), size):
        yield items[start_at : start_at + size]


# Report


def describe(run: Run) -> str:
    problems = f"  PROBLEMS: {'; '.join(run.problems)}" if run.problems else "  checks ok"
    return (
        f"  round {run.round}  {run.system:8} K={run.processes}  wall {run.wall_s:6.2f} s"
        f" = {run.wall_rate:7.0f} events/s  steady {run.steady_s:6.2f} s = {run.steady_rate:7.0f} events/s"
        f"  first body after {run.first_s:5.2f} s{problems}"
    )


@dataclass
class Summary:
    wall_rate: float
    steady_rate: float
    first_s: float


def summarize(runs: list[Run], system: str, processes: int) -> Summary:
    mine = [r for r in runs if r.system == system and r.processes == processes]
    return Summary(
        median([r.wall_rate for r in mine]),
        median([r.steady_rate for r in mine]),
        median([r.first_s for r in mine]),
    )


def per_round_ratios(runs: list[Run], processes: int) -> str:
    rates = {(r.system, r.round): r.wall_rate for r in runs if r.processes == processes}
    rounds = sorted({r.round for r in runs})
    return " ".join(f"{rates[('ours', n)] / rates[('baseline', n)]:.2f}" for n in rounds)


def report(runs: list[Run], context: Context) -> bool:
    args = context.args
    counts = sorted({r.processes for r in runs})
    summaries = {(s, k): summarize(runs, s, k) for s in ("ours", "baseline") for k in counts}
    rows = [
        (
            system,
            k,
            f"{summaries[(system, k)].wall_rate:.0f}",
            f"{summaries[(system, k)].steady_rate:.0f}",
            f"{summaries[(system, k)].first_s:.2f}",
        )
        for k in counts
        for system in ("ours", "baseline")
    ]
    print(
        f"\nmedians of {args.rounds} rounds, {context.corpus.expected.events} events"
        f" in {args.bodies} bodies ({args.corpus} corpus)"
    )
    headers = ("system", "processes", "events/s (wall)", "events/s (steady)", "first body after s")
    print(table(headers, rows))
    print()
    for k in counts:
        ours, base = summaries[("ours", k)], summaries[("baseline", k)]
        print(
            f"ours/baseline at K={k}: wall {ours.wall_rate / base.wall_rate:.2f}x,"
            f" steady {ours.steady_rate / base.steady_rate:.2f}x"
            f" (wall, round by round: {per_round_ratios(runs, k)})"
        )
    if 1 in counts and 2 in counts:
        for system in ("ours", "baseline"):
            one, two = summaries[(system, 1)], summaries[(system, 2)]
            print(
                f"scaling 1 -> 2 processes, {system}: wall {two.wall_rate / one.wall_rate:.2f}x,"
                f" steady {two.steady_rate / one.steady_rate:.2f}x"
            )
    problems = [f"round {r.round} {r.system} K={r.processes}: {p}" for r in runs for p in r.problems]
    target = TARGET_RATIO[args.corpus]
    for k in counts:
        ratio = summaries[("ours", k)].wall_rate / summaries[("baseline", k)].wall_rate
        print(
            f"target at K={k}: ours >= {target}x the baseline (wall):"
            f" {verdict(ratio >= target)} ({ratio:.2f}x)"
        )
    print(f"correctness checks: {verdict(not problems)}")
    for problem in problems:
        print(f"  problem: {problem}")
    return not problems


# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", choices=sorted(CORPORA), default="mixed", help="which bodies (default mixed)"
    )
    parser.add_argument("--bodies", type=int, default=3000, help="bodies in the corpus (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per system and process count (default 3)")
    parser.add_argument("--processes", default="1,2", help="worker process counts (default 1,2)")
    parser.add_argument("--seed", type=int, default=1, help="corpus random seed (default 1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds one run may take (default 600)")
    parser.add_argument("--logs", type=Path, help="keep the worker processes' logs in this directory")
    return parser.parse_args(argv)


def describe_corpus(corpus: Corpus) -> str:
    e = corpus.expected
    batches = corpus.batch_sizes
    return (
        f"  corpus: {e.bodies} bodies ({corpus.single_update_bodies} single-update, {len(batches)} batches of"
        f" {min(batches, default=0)}-{max(batches, default=0)}), {sum(map(len, corpus.bodies)) / 1e6:.1f} MB;"
        f" {e.events} events = {e.messages} messages ({e.orders} orders) + {e.statuses} statuses"
        f" ({', '.join(f'{k} {v}' for k, v in sorted(e.by_status.items()))}) of {e.outbound_wamids}"
        " outbound messages"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(k) for k in args.processes.split(",")]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(
        f"bench/worker {started}: {load_average()}; {args.corpus} corpus, {args.rounds} rounds,"
        f" processes {counts}"
    )
    corpus = CORPORA[args.corpus](args.bodies, seed=args.seed)
    print(describe_corpus(corpus), flush=True)
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-worker-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = stack.enter_context(log_directory(args.logs, workdir))
        redis_url = stack.enter_context(private_redis(workdir))
        database_url = stack.enter_context(throwaway_database())
        prepare_database(database_url)
        db = psycopg2.connect(database_url)
        db.autocommit = True
        stack.callback(db.close)
        store = redis.Redis.from_url(redis_url)
        context = Context(args, corpus, database_url, redis_url, db, store, logs)
        runs: list[Run] = []
        for round_ in range(1, args.rounds + 1):
            for processes in counts:
                for runner in (run_ours, run_baseline):
                    reset(context)
                    run = runner(context, processes, round_)
                    print(describe(run), flush=True)
                    runs.append(run)
        passed = report(runs, context)
        print(f"\nfinished: {load_average()}")
    return 0 if passed else 1


if __name__ == "__main__":
    entry_point(main, "bench/worker")
