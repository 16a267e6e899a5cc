"""bench/capacity: what one POST, one event and one waiting body cost, measured in one run, and the
capacity plan they give for 100, 1,000 and 10,000 events/s.

A busy shared machine makes rates noisy, but the CPU time a unit of work takes moves much less: every
figure here is CPU seconds (utime + stime from /proc), bytes of Redis memory or bytes on disk per unit.
For each corpus (single: one inbound text per body; mixed: the worker benchmark's, 70% single-update
bodies and 30% batches of 10 to 100 updates), about --events events, on a private PostgreSQL cluster,
a fresh database in it, and a private redis-server with an append-only file fsynced at every write:

1. intake: the Procfile's web line (its 2 processes) answers every body, posted by bench/e2e.py's client
   (--client-processes processes, --connections kept-alive connections) as fast as it is answered; no
   worker runs, so the bodies wait in the inbox. CPU of the web processes and of redis-server, from when
   the inbox holds 5% of the bodies (start-up and warm-up left out) to the last answer, per body pushed
   meanwhile.
2. backlog: Redis's used_memory with every body waiting (the web's own pushes: the inbox list and each
   body's waiting marker), less before the first POST: per body and per byte of body.
3. drain: a worker in this process (burst mode, as bench/profile_worker.py) stores the backlog. CPU of
   the worker (process time), of the whole PostgreSQL cluster (backends, WAL writer, checkpointer,
   autovacuum) and of redis-server (the pump and RQ's bookkeeping), per event; and the worker's duty
   cycle, its CPU over the drain's wall time (the rest it waits for PostgreSQL and Redis).
4. storage: after a VACUUM ANALYZE, what the drain added to all tables, and to webhook_events (the raw
   bodies, which `wahooks prune` deletes), per event (pg_total_relation_size: heap, TOAST, indexes).

The plan: at each rate and corpus, every component's cores = events/s x its CPU per event / --utilisation;
web processes = web cores (a process runs Python on at most one core); worker processes = worker cores /
the duty cycle; Redis memory for --backlog-minutes of bodies; PostgreSQL disk per 30 days, all of it
kept or raw bodies pruned after --retention-days; the component that needs the most cores saturates
first, unless Redis's single thread would be busier than --utilisation (it cannot be given more cores).

Run from the repository root: .venv/bin/python bench/capacity.py [--events 100000] [--corpus single]
(needs redis-server, the PostgreSQL server binaries and root, as bench/e2e.py does.)
"""

import argparse
import math
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from e2e import COUNT, SECRET, VERIFY_TOKEN, Client, describe_checkout, make_stream, wait_answering, web_argv
from storage import MIXED_EVENTS_PER_BODY, connect, scalar

from benchlib import (
    VENV_BIN,
    BenchError,
    PostgresServer,
    base_env,
    entry_point,
    free_port,
    load_average,
    postgres_server,
    prepare_database,
    running,
    start,
    table,
    throwaway_database,
    wait_until,
)
from meta_payloads import Corpus, single_message_corpus, worker_corpus
from runtime import logs
from runtime.config import WorkerConfig
from runtime.inbox import InboxKeys
from throwaway import redis_server
from workers import runner, services

QUEUE = "bench-capacity"
WARM_SHARE = 0.05  # of the bodies in the inbox before the web's CPU is counted
SECONDS_PER_MONTH = 30 * 86400
# Every table's size, and the raw bodies' table alone.
ALL_TABLES = "SELECT sum(pg_total_relation_size(relid)) FROM pg_stat_user_tables"
RAW_BODIES = "SELECT pg_total_relation_size('webhook_events')"
PROCESSED = "SELECT count(*) FROM webhook_events WHERE processed_at IS NOT NULL"


@dataclass
class Costs:
    """One corpus's unit costs."""

    corpus: str
    bodies: int
    events: int
    body_bytes: float  # a body's average size
    answer_rate: float  # POSTs/s answered while the web's CPU was counted (noisy: the machine is shared)
    web_s: float  # CPU seconds per POST, the web processes
    redis_push_s: float  # per POST, redis-server while the web pushed
    memory_per_body: float  # Redis used_memory per waiting body
    drain_rate: float  # events/s, one worker draining (noisy)
    worker_s: float  # CPU seconds per event, the worker
    postgres_s: float  # per event, the whole PostgreSQL cluster while the worker drained
    vacuum_s: float  # per event, the cluster's VACUUM ANALYZE after the drain
    redis_drain_s: float  # per event, redis-server while the worker drained
    duty: float  # the worker's CPU / the drain's wall time
    disk_per_event: float  # bytes, all tables
    raw_per_event: float  # bytes, webhook_events

    @property
    def events_per_body(self) -> float:
        return self.events / self.bodies

    def per_event(self) -> dict[str, float]:
        """CPU seconds per event of each component."""
        return {
            "web": self.web_s / self.events_per_body,
            "workers": self.worker_s,
            "Redis": self.redis_push_s / self.events_per_body + self.redis_drain_s,
            "PostgreSQL": self.postgres_s + self.vacuum_s,
        }


def make_corpus(name: str, events: int) -> Corpus:
    """The 2026 shape (business-scoped user ids), as bench/e2e.py posts it."""
    if name == "single":
        return single_message_corpus(events, business_scoped_ids=True)
    return worker_corpus(round(events / MIXED_EVENTS_PER_BODY), business_scoped_ids=True)


def postmaster(cluster: PostgresServer) -> int:
    return int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])


def family_cpu(pid: int) -> float:
    """CPU seconds a process and its children have used so far: the live ones', plus those of the children
    that exited (autovacuum workers and closed connections, Redis's append-only-file rewrites), which it has
    reaped. By parent, not process group: every PostgreSQL backend leads a group of its own."""
    ticks = 0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        except OSError:  # the process is gone
            continue
        if path.parent.name == str(pid):
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif fields[1] == str(pid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(name: str, cluster: PostgresServer, workdir: Path, args: argparse.Namespace) -> Costs:
    corpus = make_corpus(name, args.events)
    stream = make_stream(name, corpus)
    events = corpus.expected.events
    with (
        ExitStack() as stack,
        throwaway_database(cluster.url) as database_url,
        redis_server(workdir / name, durable=True) as server,
    ):
        prepare_database(database_url)
        assert server.process is not None
        redis_pid = server.process.pid
        postgres = postmaster(cluster)
        store = redis.Redis.from_url(server.url)
        stack.callback(store.close)
        inbox = InboxKeys(QUEUE).inbox

        # 1 and 2: the web alone, every body left waiting
        port = free_port()
        env = base_env(
            REDIS_URL=server.url,
            WAHOOKS_QUEUE=QUEUE,
            WHATSAPP_APP_SECRET=SECRET,
            WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
            PORT=str(port),
        )
        web = start(f"web-{name}", web_argv(None, VENV_BIN, port), env, workdir / f"web-{name}.log")
        web_pid = web.process.pid
        with running([web]):
            wait_answering(web, port, "the web line")
            memory_before = store.info("memory")["used_memory"]
            client = Client(port, stream, args)
            stack.callback(client.stop)
            wait_until(lambda: store.llen(inbox) >= WARM_SHARE * corpus.expected.bodies, 300, "warm-up", 0.01)
            pushed, web_cpu, redis_cpu = store.llen(inbox), family_cpu(web_pid), family_cpu(redis_pid)
            started = time.monotonic()
            wait_until(client.finished, 1800, "every body answered", 0.05)
            seconds = time.monotonic() - started
            posts = store.llen(inbox) - pushed
            web_cpu = family_cpu(web_pid) - web_cpu
            redis_cpu = family_cpu(redis_pid) - redis_cpu
        answers = [post.status for share in client.shares for post in share.posts]
        if answers.count(200) != len(corpus.bodies) or store.llen(inbox) != len(corpus.bodies):
            raise BenchError(
                f"{name}: {answers.count(200)} of {len(corpus.bodies)} answered 200,"
                f" {store.llen(inbox)} in the inbox"
            )
        memory = store.info("memory")["used_memory"] - memory_before

        # 3 and 4: one worker stores the backlog
        with connect(database_url) as conn, conn.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            disk_before, raw_before = scalar(cursor, ALL_TABLES), scalar(cursor, RAW_BODIES)
            svc = services.Services.build(WorkerConfig(database_url, server.url, queue=QUEUE))
            services.install(svc)
            before = family_cpu(postgres), family_cpu(redis_pid), time.process_time()
            started = time.monotonic()
            runner.run(svc, burst=True)
            drain_seconds = time.monotonic() - started
            postgres_cpu = family_cpu(postgres) - before[0]
            redis_drain_cpu = family_cpu(redis_pid) - before[1]
            worker_cpu = time.process_time() - before[2]
            svc.db.dispose()
            stored, processed = scalar(cursor, COUNT["ours"]), scalar(cursor, PROCESSED)
            if stored != events or processed != len(corpus.bodies):
                raise BenchError(f"{name}: {stored} of {events} events, {processed} bodies processed")
            # What autovacuum would do after the drain (a status leaves its message's old row version dead).
            vacuum_cpu = family_cpu(postgres)
            cursor.execute("VACUUM ANALYZE")
            vacuum_cpu = family_cpu(postgres) - vacuum_cpu
            disk = scalar(cursor, ALL_TABLES) - disk_before
            raw = scalar(cursor, RAW_BODIES) - raw_before
    return Costs(
        corpus=name,
        bodies=len(corpus.bodies),
        events=events,
        body_bytes=sum(map(len, corpus.bodies)) / len(corpus.bodies),
        answer_rate=posts / seconds,
        web_s=web_cpu / posts,
        redis_push_s=redis_cpu / posts,
        memory_per_body=memory / len(corpus.bodies),
        drain_rate=events / drain_seconds,
        worker_s=worker_cpu / events,
        postgres_s=postgres_cpu / events,
        vacuum_s=vacuum_cpu / events,
        redis_drain_s=redis_drain_cpu / events,
        duty=worker_cpu / drain_seconds,
        disk_per_event=disk / events,
        raw_per_event=raw / events,
    )


def report_costs(costs: list[Costs]) -> None:
    """One row a figure, one column a corpus: ten columns would not fit a terminal."""
    figures = {
        "bodies / events": lambda c: f"{c.bodies:,} / {c.events:,}",
        "a body's bytes": lambda c: f"{c.body_bytes:,.0f}",
        "web CPU a POST (POSTs per core-s)": lambda c: f"{c.web_s * 1e6:.0f} us ({1 / c.web_s:,.0f})",
        "Redis CPU a POST (web's push)": lambda c: f"{c.redis_push_s * 1e6:.0f} us",
        "Redis memory a waiting body": lambda c: (
            f"{c.memory_per_body:,.0f} B ({c.memory_per_body / c.body_bytes:.2f}x the body)"
        ),
        "worker CPU an event (events per core-s)": lambda c: (
            f"{c.worker_s * 1e6:.1f} us ({1 / c.worker_s:,.0f})"
        ),
        "PostgreSQL CPU an event, + VACUUM (events per core-s)": lambda c: (
            f"{c.postgres_s * 1e6:.1f} + {c.vacuum_s * 1e6:.1f} us ({1 / (c.postgres_s + c.vacuum_s):,.0f})"
        ),
        "Redis CPU an event (worker's pump, RQ)": lambda c: f"{c.redis_drain_s * 1e6:.1f} us",
        "worker duty (CPU / wall)": lambda c: f"{c.duty:.0%}",
        "PostgreSQL bytes an event (raw bodies)": lambda c: (
            f"{c.disk_per_event:,.0f} ({c.raw_per_event:,.0f})"
        ),
        "POSTs/s answered, events/s stored (noisy)": lambda c: f"{c.answer_rate:,.0f}, {c.drain_rate:,.0f}",
    }
    print(
        table(
            ["per unit", *(c.corpus for c in costs)], [(f, *map(show, costs)) for f, show in figures.items()]
        )
    )
    print()


def plan(costs: list[Costs], args: argparse.Namespace) -> None:
    """The capacity table: one row a rate and corpus."""
    rows = []
    for rate in args.rates:
        for c in costs:
            need = {part: rate * seconds for part, seconds in c.per_event().items()}  # busy cores
            posts = rate / c.events_per_body
            redis_busy = need["Redis"]
            first = max(need, key=need.__getitem__)
            if redis_busy > args.utilisation:
                first = f"Redis: its one thread {redis_busy:.0%} busy"
            kept = rate * SECONDS_PER_MONTH * c.disk_per_event
            pruned = rate * SECONDS_PER_MONTH * (c.disk_per_event - c.raw_per_event)
            window = rate * args.retention_days * 86400 * c.raw_per_event
            rows.append(
                (
                    f"{rate:,}",
                    c.corpus,
                    f"{posts:,.0f}",
                    math.ceil(need["web"] / args.utilisation),
                    math.ceil(need["workers"] / args.utilisation / c.duty),
                    " / ".join(f"{need[part] / args.utilisation:.2f}" for part in need),
                    math.ceil(sum(need.values()) / args.utilisation),
                    gib(posts * args.backlog_minutes * 60 * c.memory_per_body),
                    gib(kept),
                    f"{gib(pruned)} + {gib(window)} standing",
                    first,
                )
            )
    headers = (
        "events/s",
        "corpus",
        "POSTs/s",
        "web procs",
        "worker procs",
        "cores web / workers / Redis / PostgreSQL",
        "cores",
        f"Redis, {args.backlog_minutes:g} min backlog",
        "disk/month, all kept",
        f"disk/month, raw pruned at {args.retention_days:g} d",
        "first to saturate",
    )
    print(f"plan at {args.utilisation:.0%} utilisation (GiB):")
    print(table(headers, rows))
    for c in costs:
        ceiling = args.utilisation / c.per_event()["Redis"]
        print(f"  {c.corpus}: one Redis is {args.utilisation:.0%} busy at {ceiling:,.0f} events/s")


def gib(size: float) -> str:
    return f"{size / 2**30:,.2f}" if size < 10 * 2**30 else f"{size / 2**30:,.0f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=["single", "mixed"], action="append", help="both by default")
    parser.add_argument("--events", type=int, default=100_000, help="events per corpus (default 100,000)")
    parser.add_argument("--connections", type=int, default=8, help="the client's connections (default 8)")
    parser.add_argument("--client-processes", type=int, default=2, help="the client's processes (default 2)")
    parser.add_argument("--utilisation", type=float, default=0.7, help="busy share a core is planned at")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 1_000, 10_000], help="events/s")
    parser.add_argument("--backlog-minutes", type=float, default=10)
    parser.add_argument("--retention-days", type=float, default=90, help="wahooks prune --older-than")
    args = parser.parse_args(argv)
    args.rate = 0  # the client posts as fast as it is answered
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(level="WARNING")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"bench/capacity {started} at {describe_checkout()}: {load_average()}")
    costs = []
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-capacity-") as tmp, postgres_server() as cluster:
        for name in args.corpus or ["single", "mixed"]:
            (Path(tmp) / name).mkdir()
            costs.append(measure(name, cluster, Path(tmp), args))
            print(f"  {name} measured: {load_average()}", flush=True)
    print()
    report_costs(costs)
    plan(costs, args)
    print(f"\nfinished: {load_average()}")
    return 0


if __name__ == "__main__":
    entry_point(main, "bench/capacity")
