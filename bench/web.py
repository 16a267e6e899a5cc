"""bench/web: our POST /webhook against hello-world Flask and HMAC + one LPUSH, under several web servers.

Each server candidate (gunicorn sync, gunicorn gthread, granian's WSGI interface with a few thread
settings, and the Procfile's own web: line) serves the three apps (the baselines are in
bench/baseline_apps.py) on 127.0.0.1, on free ports, all at once. wrk (apt-get install -y wrk) drives
each with keep-alive connections and a distinct signed ~2 KB Meta payload per request, never repeated
within a run: the endpoint deduplicates identical bodies still waiting, which would make repeats
cheap. Each round runs every server's three apps in turn; medians of the rounds are reported, and
each app's ratios are to hello-world under the same server.

After every run of ours the Redis inbox must hold every body answered 200 (at most those sent:
wrk drops the requests still in flight when it stops), with no non-2xx answer and no socket error.
After the rounds, each server's ours is probed with slow clients: 50 connections that send part of a
request and stall (half inside the headers, half inside a body whose Content-Length promises more),
while a signed POST and the verify-token GET are timed; then the endpoint must answer normally again.
A private redis-server is started and stopped; nothing else is touched.

Run from the repository root: .venv/bin/python bench/web.py [--seconds 10 --rounds 3 --connections 32]
"""

import argparse
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from benchlib import (
    BENCH_DIR,
    LOOPBACK,
    VENV_BIN,
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
OUR_APP = "webhook.wsgi:app"
TARGET_THROUGHPUT = 0.5  # ours / hello-world requests per second, at least
TARGET_P99 = 2.5  # ours / hello-world p99 latency, at most
STALLED = 50  # slow clients held open while the endpoint is timed
SLOW_PROBE_TIMEOUT = 5.0  # seconds a probe request may wait before it counts as stalled
SLOW_TARGET_SECONDS = 1.0  # the bound on a request while slow clients stall


@dataclass(frozen=True)
class App:
    key: str
    label: str
    target: str  # the WSGI target given to the server


APPS = (
    App("hello", "hello-world Flask", "baseline_apps:hello"),
    App("lpush", "HMAC + one LPUSH", "baseline_apps:lpush"),
    App("ours", "ours", OUR_APP),
)


@dataclass(frozen=True)
class Server:
    name: str
    command: str  # {app}, {port} and {workers} are filled in; "" means the Procfile's web: line

    def argv(self, app: App, port: int, workers: int) -> list[str]:
        if not self.command:
            return procfile_web(app, port, workers)
        words = self.command.format(app=app.target, port=port, workers=workers).split()
        return venv_executable(words)

    def installed(self) -> bool:
        return shutil.which(self.argv(APPS[0], 0, 1)[0]) is not None


GUNICORN = "gunicorn --preload --workers {workers} --bind 127.0.0.1:{port}"
GRANIAN = "granian --interface wsgi --workers {workers} --host 127.0.0.1 --port {port}"
SERVERS = {
    server.name: server
    for server in (
        Server("gunicorn-sync", f"{GUNICORN} --worker-class sync {{app}}"),
        Server("gunicorn-gthread", f"{GUNICORN} --worker-class gthread --threads 8 {{app}}"),
        Server("granian", f"{GRANIAN} {{app}}"),
        Server("granian-bt8", f"{GRANIAN} --blocking-threads 8 {{app}}"),
        Server("granian-bt32", f"{GRANIAN} --blocking-threads 32 {{app}}"),
        Server("procfile", ""),
    )
}
DEFAULT_SERVERS = "gunicorn-sync,gunicorn-gthread,granian,granian-bt8,granian-bt32,procfile"


def procfile_web(app: App, port: int, workers: int) -> list[str]:
    """The Procfile's web: command on 127.0.0.1:port with this app; the app module is its last word."""
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    argv = [word.replace("0.0.0.0", LOOPBACK) for word in procfile_command("web", env)]
    if argv[-1] != OUR_APP:
        raise BenchError(f"the Procfile's web: line must end with {OUR_APP}: {argv}")
    return venv_executable([*argv[:-1], app.target])


@dataclass
class Run:
    app: str
    server: str
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


@dataclass
class Endpoint:
    server: Server
    app: App
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/webhook"


# Serving


def serve(server: Server, app: App, env: dict[str, str], logs: Path, workers: int) -> Endpoint:
    port = free_port()
    argv = server.argv(app, port, workers)
    child = start(f"{server.name}-{app.key}", argv, env, logs / f"{server.name}-{app.key}.log")
    print(f"[{server.name}] {app.label}: {' '.join(argv)}", flush=True)
    return Endpoint(server, app, port, child)


def wait_answering(endpoint: Endpoint) -> None:
    def healthy() -> bool:
        if not endpoint.child.alive():
            what = f"{endpoint.server.name} for {endpoint.app.label}"
            raise BenchError(f"{what} exited:\n{endpoint.child.log_tail()}")
        return request(endpoint.port, "GET", "/healthz", timeout=1)[0] == 200

    wait_until(healthy, 30, f"{endpoint.server.name} for {endpoint.app.label}")


def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5
) -> tuple[int | None, bytes]:
    """One request on a new connection: (status, body), or (None, b"") when it fails or times out."""
    headers = {"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"} if body else {}
    with closing(http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)) as connection:
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError:
            return None, b""


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
    endpoint: Endpoint,
    round_: int,
    store: redis.Redis,
    args: argparse.Namespace,
    bodies: Path,
    seconds: float,
) -> Run:
    """One wrk run against a clean Redis; the bodies the app stored are counted, then flushed."""
    store.flushdb()
    result = run_wrk(endpoint.url, args, seconds, bodies)
    key = {"ours": InboxKeys(QUEUE).inbox, "lpush": LPUSH_KEY}.get(endpoint.app.key)
    stored = store.llen(key) if key else None
    store.flushdb()
    sockets = sum(int(result[k]) for k in ("connect", "read", "write", "timeout"))
    return Run(
        app=endpoint.app.key,
        server=endpoint.server.name,
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


def describe(run: Run) -> str:
    line = (
        f"  round {run.round}  {run.server:18} {run.app:6} {run.rps:8.0f} req/s  p50 {run.p50_ms:6.2f} ms"
        f"  p99 {run.p99_ms:6.2f} ms  non-2xx {run.non_2xx}  socket errors {run.socket_errors}"
    )
    if run.app == "ours" and run.stored is not None:
        line += f"  inbox {run.stored} = {run.ok} answered 200 + {run.stored - run.ok} in flight at stop"
    return line


# Slow clients


@dataclass
class SlowResult:
    post_ms: float | None  # None: no answer within SLOW_PROBE_TIMEOUT
    get_ms: float | None
    recovered: bool  # a POST answered 200 once the stalled connections closed

    @property
    def ok(self) -> bool:
        bound = SLOW_TARGET_SECONDS * 1000
        return self.recovered and all(t is not None and t <= bound for t in (self.post_ms, self.get_ms))

    def __str__(self) -> str:
        def shown(ms: float | None) -> str:
            return f"{ms:.0f} ms" if ms is not None else f"> {SLOW_PROBE_TIMEOUT:g} s"

        return f"POST {shown(self.post_ms)}, GET {shown(self.get_ms)}"


def stall(port: int, count: int) -> list[socket.socket]:
    """count connections, each stopped inside a request: even ones in the headers, odd ones in the body."""
    head = b"POST /webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    parts = (head + b"X-Hub-Sig", head + b"Content-Length: 2048\r\n\r\n" + b'{"object":')
    sockets = []
    for n in range(count):
        connection = socket.create_connection((LOOPBACK, port), timeout=5)
        connection.sendall(parts[n % 2])
        sockets.append(connection)
    return sockets


def timed(port: int, method: str, path: str, body: bytes | None, expected: int) -> float | None:
    began = time.monotonic()
    status, _ = request(port, method, path, body, timeout=SLOW_PROBE_TIMEOUT)
    return (time.monotonic() - began) * 1000 if status == expected else None


def probe_slow_clients(endpoint: Endpoint, store: redis.Redis) -> SlowResult:
    """Time a signed POST and the handshake GET while STALLED connections hang mid-request."""
    handshake = f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"
    bodies = iter(web_bodies(2, seed=99))
    sockets = stall(endpoint.port, STALLED)
    try:
        time.sleep(0.5)  # let the server take them all in
        post_ms = timed(endpoint.port, "POST", "/webhook", next(bodies), 200)
        get_ms = timed(endpoint.port, "GET", handshake, None, 200)
    finally:
        for connection in sockets:
            connection.close()
    recovered = wait_answers(endpoint.port, next(bodies))
    store.flushdb()
    return SlowResult(post_ms, get_ms, recovered)


def wait_answers(port: int, body: bytes, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if request(port, "POST", "/webhook", body, timeout=1)[0] == 200:
            return True
    return False


# The benchmark


def bench(
    servers: list[Server],
    args: argparse.Namespace,
    env: dict[str, str],
    store: redis.Redis,
    workdir: Path,
    logs: Path,
) -> tuple[list[Run], dict[str, SlowResult]]:
    runs: list[Run] = []
    slow: dict[str, SlowResult] = {}
    with ExitStack() as stack:
        endpoints = []
        for server in servers:
            for app in APPS:
                endpoint = serve(server, app, env, logs, args.workers)
                stack.enter_context(running([endpoint.child]))
                endpoints.append(endpoint)
        for endpoint in endpoints:
            wait_answering(endpoint)
        for endpoint in endpoints:
            measure(endpoint, 0, store, args, workdir, args.warmup)
        for round_ in range(1, args.rounds + 1):
            for endpoint in endpoints:
                run = measure(endpoint, round_, store, args, workdir, args.seconds)
                print(describe(run), flush=True)
                runs.append(run)
        for endpoint in endpoints:
            if endpoint.app.key == "ours":
                slow[endpoint.server.name] = probe_slow_clients(endpoint, store)
                print(f"  slow clients, {endpoint.server.name}: {slow[endpoint.server.name]}", flush=True)
    return runs, slow


# Report


@dataclass
class Summary:
    rps: float
    p50_ms: float
    p99_ms: float
    problems: list[str]


def summarize(runs: list[Run], server: str, app: str) -> Summary:
    mine = [r for r in runs if r.server == server and r.app == app]
    problems = [f"round {r.round}: {p}" for r in mine for p in r.problems(distinct_required=app == "ours")]
    return Summary(
        median([r.rps for r in mine]),
        median([r.p50_ms for r in mine]),
        median([r.p99_ms for r in mine]),
        problems,
    )


def report_server(server: Server, runs: list[Run], rounds: int) -> dict[str, Summary]:
    summaries = {app.key: summarize(runs, server.name, app.key) for app in APPS}
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
    print(f"\n[{server.name}] medians of {rounds} rounds: {server.command or 'the Procfile web: line'}")
    print(table(headers, rows))
    print(f"ours/hello req/s round by round: {per_round_ratios(runs, server.name)}")
    ours, ceiling = summaries["ours"], summaries["lpush"]
    print(
        f"gap to the HMAC + LPUSH ceiling: ours at {ours.rps / ceiling.rps:.2f}x its req/s,"
        f" {ours.p99_ms / ceiling.p99_ms:.2f}x its p99"
    )
    for problem in ours.problems + summaries["hello"].problems + summaries["lpush"].problems:
        print(f"  problem: {problem}")
    return summaries


def per_round_ratios(runs: list[Run], server: str) -> str:
    rps = {(r.app, r.round): r.rps for r in runs if r.server == server}
    rounds = sorted({r.round for r in runs})
    return " ".join(f"{rps[('ours', n)] / rps[('hello', n)]:.2f}" for n in rounds)


def report_comparison(results: dict[str, dict[str, Summary]], slow: dict[str, SlowResult]) -> bool:
    """The servers side by side; True when the Procfile's server (if measured) meets every target."""
    rows = []
    passed = {}
    for name, s in results.items():
        ours, hello = s["ours"], s["hello"]
        throughput, p99 = ours.rps / hello.rps, ours.p99_ms / hello.p99_ms
        under_load = throughput >= TARGET_THROUGHPUT and p99 <= TARGET_P99 and not ours.problems
        passed[name] = under_load and slow[name].ok
        rows.append(
            (
                name,
                f"{hello.rps:.0f}",
                f"{ours.rps:.0f}",
                f"{ours.p99_ms:.2f}",
                f"{throughput:.2f}x",
                f"{p99:.2f}x",
                verdict(under_load),
                f"{slow[name]} ({verdict(slow[name].ok)})",
            )
        )
    headers = (
        "server",
        "hello req/s",
        "ours req/s",
        "ours p99 ms",
        "req/s vs hello",
        "p99 vs hello",
        "targets",
        f"with {STALLED} stalled clients",
    )
    print("\nours by server (each ratio to hello-world under the same server)")
    print(table(headers, rows))
    print(
        f"targets: ours req/s >= {TARGET_THROUGHPUT}x hello, p99 <= {TARGET_P99}x hello, zero errors and"
        f" no lost body; slow clients: POST 200 and GET challenge each within {SLOW_TARGET_SECONDS:g} s"
    )
    return passed["procfile"] if "procfile" in passed else all(passed.values())


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
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server (default 2)")
    parser.add_argument(
        "--servers",
        default=DEFAULT_SERVERS,
        help=f"comma-separated, from {', '.join(SERVERS)} (default {DEFAULT_SERVERS})",
    )
    parser.add_argument(
        "--max-rate",
        type=int,
        default=20000,
        help="req/s that ours can reach at most: bodies are generated for a run at this rate (default 20000;"
        " 12,000 was too few on 2026-12-05's fast evening, where ours answered 13,800/s)",
    )
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this directory")
    args = parser.parse_args(argv)
    unknown = set(args.servers.split(",")) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}: choose from {sorted(SERVERS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/web needs wrk: apt-get install -y wrk", file=sys.stderr)
        return 2
    servers = [SERVERS[name] for name in args.servers.split(",")]
    for server in servers:
        if not server.installed():
            print(f"skipped {server.name}: {server.argv(APPS[0], 0, 1)[0]} is not installed", file=sys.stderr)
    servers = [server for server in servers if server.installed()]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    print(f"bench/web {started}: {load_average()}; wrk -t{args.threads} -c{args.connections},")
    print(
        f"  {args.rounds} rounds x {args.seconds:g} s after a {args.warmup:g} s warm-up, per app and server;"
        f" {args.workers} worker processes per server"
    )
    print(f"  the Procfile's web: line: {' '.join(procfile_command('web', {}))}")
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
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        runs, slow = bench(servers, args, env, store, workdir, logs)
        results = {server.name: report_server(server, runs, args.rounds) for server in servers}
        ok = report_comparison(results, slow)
        print(f"\nfinished: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    entry_point(main, "bench/web")
