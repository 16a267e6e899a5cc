"""bench/profile_worker: where one worker's time goes while it drains N pre-queued bodies.

Pushes N bodies into the inbox of a throwaway PostgreSQL database and a private Redis exactly as the web
app does, then runs the worker in this process (burst mode) under pyinstrument and prints the call tree
and bodies/s, with the CPU time the worker took and, apart, that of the PostgreSQL backends serving the
database (read from /proc: on one machine they compete with the worker for the same cores): on a busy
machine the CPU time per body moves much less than the rate. Profiling slows the code it watches: read
the shares,
not the rate (`--no-profile` gives the rate alone).
Run from the repository root: .venv/bin/python bench/profile_worker.py [--corpus single|mixed]
[--bodies 3000] [--batch 100]
(pyinstrument: .venv/bin/pip install pyinstrument)
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from benchlib import ROOT, entry_point, private_redis, throwaway_database
from cli.catalog import import_catalog
from cli.migrate import upgrade
from cli.tenants import NewTenant, add
from meta_payloads import CATALOG_ID, PHONE_NUMBER_ID, single_message_corpus, worker_corpus
from models.db import Database
from runtime import logs
from runtime.config import WorkerConfig
from workers import runner, services


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["single", "mixed"], default="single")
    parser.add_argument("--bodies", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100, help="WAHOOKS_BATCH_MAX_BODIES")
    parser.add_argument("--no-profile", action="store_true", help="time the drain without the profiler")
    args = parser.parse_args()
    logs.configure(level="WARNING")
    with (
        tempfile.TemporaryDirectory() as workdir,
        private_redis(Path(workdir)) as redis_url,
        throwaway_database() as database_url,
    ):
        upgrade(database_url)
        db = Database(database_url)
        add(db, NewTenant("Acme", PHONE_NUMBER_ID, None, None))
        import_catalog(db, PHONE_NUMBER_ID, CATALOG_ID, ROOT / "tests" / "fixtures" / "catalog_a.csv")
        config = WorkerConfig(database_url, redis_url, queue="profile", batch_max_bodies=args.batch)
        svc = services.Services.build(config, db=db)
        services.install(svc)
        corpus = (single_message_corpus if args.corpus == "single" else worker_corpus)(args.bodies)
        for body in corpus.bodies:
            svc.inbox.push(body)
        backends = _backend_cpu(db)
        cpu_started = time.process_time()
        seconds = _drain(svc, profile=not args.no_profile)
        cpu_seconds = time.process_time() - cpu_started
        server_seconds = sum(
            cpu - backends.get(pid, 0.0) for pid, cpu in _backend_cpu(db).items() if cpu >= 0
        )
        events = corpus.expected.events
        print(
            f"{args.bodies} bodies, {events} events in {seconds:.2f} s: {events / seconds:.0f} events/s;"
            f" the worker's CPU {cpu_seconds:.2f} s, {cpu_seconds / args.bodies * 1e6:.0f} us a body;"
            f" PostgreSQL's {server_seconds:.2f} s, {server_seconds / args.bodies * 1e6:.0f} us a body"
        )
        db.dispose()
    return 0


def _backend_cpu(db: Database) -> dict[int, float]:
    """CPU seconds (user + system) each PostgreSQL backend connected to this database has used so far."""
    with db.session() as session:
        pids = session.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return {pid: _process_cpu(pid) for pid in pids}


def _process_cpu(pid: int) -> float:
    """-1 when the process is gone (or on another machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drain(svc: services.Services, profile: bool) -> float:
    started = time.perf_counter()
    if not profile:
        runner.run(svc, burst=True)
        return time.perf_counter() - started
    from pyinstrument import Profiler

    with Profiler(interval=0.0005) as profiler:
        runner.run(svc, burst=True)
    seconds = time.perf_counter() - started
    print(profiler.output_text(unicode=True, color=False, show_all=bool(os.environ.get("SHOW_ALL"))))
    return seconds


if __name__ == "__main__":
    entry_point(main, "bench/profile_worker")
