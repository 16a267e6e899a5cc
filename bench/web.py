"""bench/web: our POST /webhook against hello-world Flask and HMAC + one LPUSH: same gunicorn, same load.

The three apps are served by the Procfile's `web:` command (its app module swapped for the
baselines in bench/baseline_apps.py, bound to 127.0.0.1 on free ports), once with the sync worker
class and once with `--worker-class gthread --threads 8`. wrk (apt-get install -y wrk) drives each
with the same connections and a distinct signed ~2 KB Meta payload per request, never repeated
within a run: the endpoint deduplicates identical bodies still waiting, which would make repeats
cheap. Each round runs the three apps in turn; medians of the rounds are reported.

After every run of ours the Redis inbox must hold every body answered 200 (at most those sent:
wrk drops the requests still in flight when it stops), with no non-2xx answer and no socket error.
A private redis-server is started and stopped; nothing else is touched.

Run from the repository root: .venv/bin/python bench/web.py [--seconds 10 --rounds 3 --connections 32]
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests

from benchlib import (
    BENCH_DIR,
    LOOPBACK,
    BenchError,
    Child,
    base_env,
    entry_point,
    free_port,
    load_average,
    log_directory,
    median,
    private_redis,
    procfile_command,
    running,
    start,
    table,
    venv_executable,
    verdict,
    wait_until,
)
from meta_payloads import web_bodies
from runtime.inbox import InboxKeys
from webhook.signature import sign

QUEUE = "bench-web"
SECRET = "bench-app-secret-not-for-production"
VERIFY_TOKEN = "bench-verify-token"
LPUSH_KEY = "bench:lpush"
WRK_SCRIPT = BENCH_DIR / "post_bodies.lua"
TARGET_THROUGHPUT = 0.5  # ours / hello-world requests per second, at least
TARGET_P99 = 2.5  # ours / hello-world p99 latency, below


@dataclass(frozen=True)
class App:
    key: str
    label: str
    target: str  # gunicorn's APP_MODULE; "" keeps the Procfile's own


APPS = (
    App("hello", "hello-world Flask", "baseline_apps:hello"),
    App("lpush", "HMAC + one LPUSH", "baseline_apps:lpush"),
    App("ours", "ours (Procfile web:)", ""),
)


@dataclass(frozen=True)
class Flavor:
    name: str
    worker_class: str
    threads: int


FLAVORS = {
    "sync": Flavor("sync", "sync", 1),
    "gthread": Flavor("gthread", "gthread", 8),
}


@dataclass
class Run:
    app: str
    flavor: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    sent: int
    non_2xx: int
    socket_errors: int
    wraps: int
    stored: int | None  # bodies in Redis afterwards (ours: the inbox; lpush: its list)

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    def problems(self, distinct_required: bool) -> list[str]:
        found = []
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx answers")
        if self.socket_errors:
            found.append(f"{self.socket_errors} socket errors/timeouts")
        if distinct_required and self.wraps:
            found.append("bodies ran out and repeated: raise --max-rate")
        if self.stored is not None and not self.ok <= self.stored <= self.sent:
            found.append(f"Redis holds {self.stored} bodies for {self.ok} answered 200 ({self.sent} sent)")
        return found


# Serving


def gunicorn_argv(flavor: Flavor, app: App, port: int) -> list[str]:
    """The Procfile's web: command with our port on 127.0.0.1, this worker class, and this app."""
    argv = venv_executable(procfile_command("web", {**os.environ, "PORT": str(port)}))
    argv = set_option(argv, ("--bind", "-b"), f"{LOOPBACK}:{port}")
    argv = set_option(argv, ("--worker-class", "-k"), flavor.worker_class)
    argv = set_option(argv, ("--threads",), str(flavor.threads))
    if app.target:
        argv[-1] = app.target
    return argv


def set_option(argv: list[str], names: tuple[str, ...], value: str) -> list[str]:
    """Replace an option's value (`--name value` or `--name=value`), or add it before the app module."""
    out = list(argv)
    for i, token in enumerate(out):
        if token in names:
            out[i + 1] = value
            return out
        if token.startswith(f"{names[0]}="):
            out[i] = f"{names[0]}={value}"
            return out
    return [*out[:-1], names[0], value, out[-1]]


def serve(flavor: Flavor, app: App, env: dict[str, str], logs: Path) -> tuple[Child, str, list[str]]:
    port = free_port()
    argv = gunicorn_argv(flavor, app, port)
    child = start(f"{flavor.name}-{app.key}", argv, env, logs / f"gunicorn-{flavor.name}-{app.key}.log")
    base = f"http://{LOOPBACK}:{port}"

    def healthy() -> bool:
        if not child.alive():
            raise BenchError(f"gunicorn for {app.label} exited:\n{child.log_tail()}")
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, 30, f"gunicorn for {app.label}")
    return child, f"{base}/webhook", argv


# Load


def write_bodies(directory: Path, count: int, threads: int) -> None:
    """count distinct signed bodies, dealt round-robin into one file per wrk thread."""
    files = [(directory / f"bodies-{n}.txt").open("w") for n in range(threads)]
    try:
        for n, body in enumerate(web_bodies(count)):
            files[n % threads].write(f"{sign(SECRET, body)}\t{body.decode()}\n")
    finally:
        for file in files:
            file.close()


def run_wrk(url: str, args: argparse.Namespace, seconds: float, bodies: Path) -> dict[str, float]:
    argv = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout", "5s",
        "-s", str(WRK_SCRIPT),
        url,
        "--", str(bodies),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise BenchError(f"wrk printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def measure(
    app: App,
    flavor: Flavor,
    round_: int,
    url: str,
    store: redis.Redis,
    args: argparse.Namespace,
    bodies: Path,
    seconds: float,
) -> Run:
    """One wrk run against a clean Redis; the bodies the app stored are counted, then flushed."""
    store.flushdb()
    result = run_wrk(url, args, seconds, bodies)
    stored = {"ours": store.llen(InboxKeys(QUEUE).inbox), "lpush": store.llen(LPUSH_KEY)}.get(app.key)
    store.flushdb()
    sockets = sum(int(result[k]) for k in ("connect", "read", "write", "timeout"))
    return Run(
        app=app.key,
        flavor=flavor.name,
        round=round_,
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=int(result["requests"]),
        sent=int(result["sent"]),
        non_2xx=int(result["status"]),
        socket_errors=sockets,
        wraps=int(result["wraps"]),
        stored=stored,
    )


def describe(run: Run, label: str) -> str:
    line = (
        f"  round {run.round}  {label:22} {run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms"
        f"  p99 {run.p99_ms:6.2f} ms  non-2xx {run.non_2xx}  socket errors {run.socket_errors}"
    )
    if run.app == "ours" and run.stored is not None:
        line += f"  inbox {run.stored} = {run.ok} answered 200 + {run.stored - run.ok} in flight at stop"
    return line


def bench_flavor(
    flavor: Flavor,
    args: argparse.Namespace,
    env: dict[str, str],
    store: redis.Redis,
    workdir: Path,
    logs: Path,
) -> list[Run]:
    runs: list[Run] = []
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        for app in APPS:
            child, urls[app.key], argv = serve(flavor, app, env, logs)
            stack.enter_context(running([child]))
            print(f"[{flavor.name}] {app.label}: {' '.join(argv)}", flush=True)
        for app in APPS:
            measure(app, flavor, 0, urls[app.key], store, args, workdir, args.warmup)
        for round_ in range(1, args.rounds + 1):
            for app in APPS:
                run = measure(app, flavor, round_, urls[app.key], store, args, workdir, args.seconds)
                print(describe(run, app.label), flush=True)
                runs.append(run)
    return runs


# Report


@dataclass
class Summary:
    rps: float
    p50_ms: float
    p99_ms: float
    problems: list[str]


def summarize(runs: list[Run], app: str) -> Summary:
    mine = [r for r in runs if r.app == app]
    problems = [f"round {r.round}: {p}" for r in mine for p in r.problems(distinct_required=app == "ours")]
    return Summary(
        median([r.rps for r in mine]),
        median([r.p50_ms for r in mine]),
        median([r.p99_ms for r in mine]),
        problems,
    )


def report_flavor(flavor: Flavor, runs: list[Run], rounds: int) -> dict[str, Summary]:
    summaries = {app.key: summarize(runs, app.key) for app in APPS}
    hello = summaries["hello"]
    rows = [
        (
            app.label,
            f"{s.rps:.0f}",
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            f"{s.rps / hello.rps:.2f}x",
            f"{s.p99_ms / hello.p99_ms:.2f}x",
            len(s.problems),
        )
        for app, s in ((app, summaries[app.key]) for app in APPS)
    ]
    headers = ("app", "req/s", "p50 ms", "p99 ms", "req/s vs hello", "p99 vs hello", "problems")
    print(f"\n[{flavor.name}] medians of {rounds} rounds")
    print(table(headers, rows))
    print(f"ours/hello req/s round by round: {per_round_ratios(runs)}")
    ours, ceiling = summaries["ours"], summaries["lpush"]
    print(
        f"gap to the HMAC + LPUSH ceiling: ours at {ours.rps / ceiling.rps:.2f}x its req/s,"
        f" {ours.p99_ms / ceiling.p99_ms:.2f}x its p99"
    )
    throughput, p99 = ours.rps / hello.rps, ours.p99_ms / hello.p99_ms
    print(
        f"targets: req/s >= {TARGET_THROUGHPUT}x hello: {verdict(throughput >= TARGET_THROUGHPUT)}"
        f" ({throughput:.2f}x); p99 < {TARGET_P99}x hello: {verdict(p99 < TARGET_P99)} ({p99:.2f}x);"
        f" zero errors and no lost body: {verdict(not ours.problems)}"
    )
    for problem in ours.problems + summaries["hello"].problems + summaries["lpush"].problems:
        print(f"  problem: {problem}")
    return summaries


def per_round_ratios(runs: list[Run]) -> str:
    rps = {(r.app, r.round): r.rps for r in runs}
    rounds = sorted({r.round for r in runs})
    return " ".join(f"{rps[('ours', n)] / rps[('hello', n)]:.2f}" for n in rounds)


def report_choice(results: dict[str, dict[str, Summary]]) -> None:
    if set(results) != set(FLAVORS):
        return
    sync, gthread = results["sync"], results["gthread"]
    rows = []
    for name, s in (("sync", sync), ("gthread --threads 8", gthread)):
        o, h = s["ours"], s["hello"]
        rows.append(
            (name, f"{o.rps:.0f}", f"{o.p99_ms:.2f}", f"{o.rps / h.rps:.2f}x", f"{o.p99_ms / h.p99_ms:.2f}x")
        )
    print("\nours, by worker class (hello-world measured under the same class)")
    print(table(("worker class", "req/s", "p99 ms", "req/s vs hello", "p99 vs hello"), rows))
    by_rps = "sync" if sync["ours"].rps >= gthread["ours"].rps else "gthread"
    by_ratio = (
        "sync"
        if sync["ours"].rps / sync["hello"].rps >= gthread["ours"].rps / gthread["hello"].rps
        else "gthread"
    )
    print(f"higher absolute req/s: {by_rps}; higher ratio to its hello-world: {by_ratio}")


# Main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of a measured run (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=3, help="warm-up run per app, not measured (default 3)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per app (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--flavors", default="sync,gthread", help="worker classes to run (default sync,gthread)"
    )
    parser.add_argument(
        "--max-rate",
        type=int,
        default=8000,
        help="req/s that ours can reach at most: bodies are generated for a run at this rate (default 8000)",
    )
    parser.add_argument("--logs", type=Path, help="keep the gunicorn logs in this directory")
    args = parser.parse_args(argv)
    unknown = set(args.flavors.split(",")) - set(FLAVORS)
    if unknown:
        parser.error(f"unknown flavors {sorted(unknown)}: choose from {sorted(FLAVORS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/web needs wrk: apt-get install -y wrk", file=sys.stderr)
        return 2
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"bench/web {started}: {load_average()}; wrk -t{args.threads} -c{args.connections},")
    print(
        f"  {args.rounds} rounds x {args.seconds:g} s after a {args.warmup:g} s warm-up,"
        " per app and worker class"
    )
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-web-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        count = math.ceil(max(args.seconds, args.warmup) * args.max_rate)
        began = time.monotonic()
        write_bodies(workdir, count, args.threads)
        print(f"  {count} distinct signed bodies of ~2 KB written in {time.monotonic() - began:.1f} s")
        logs = stack.enter_context(log_directory(args.logs, workdir))
        redis_url = stack.enter_context(private_redis(workdir))
        store = redis.Redis.from_url(redis_url)
        env = base_env(
            REDIS_URL=redis_url,
            WHATSAPP_APP_SECRET=SECRET,
            WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
            WAHOOKS_QUEUE=QUEUE,
            BENCH_LPUSH_KEY=LPUSH_KEY,
        )
        results = {}
        for name in args.flavors.split(","):
            runs = bench_flavor(FLAVORS[name], args, env, store, workdir, logs)
            results[name] = report_flavor(FLAVORS[name], runs, args.rounds)
        report_choice(results)
        print(f"\nfinished: {load_average()}")
        failed = any(s.problems for flavor in results.values() for s in flavor.values())
    return 1 if failed else 0


if __name__ == "__main__":
    entry_point(main, "bench/web")
