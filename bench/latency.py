"""bench/latency: the end-to-end single stream with a round trip added between the app and its servers.

On loopback a round trip costs about 0.1 ms; between hosts, and to managed Redis and PostgreSQL, it
costs 0.5-2 ms, and every round trip a body makes is paid again. This runs bench/e2e.py's deployment
of ours (the Procfile's web line and 2 workers) with every connection to Redis and to PostgreSQL
made through bench/delay_proxy.py, twice per round: at 0 ms added (the proxy's own cost, which both
runs pay) and at --added-rtt-ms. It prints stored events/s, lags, the round trip measured through
each proxy, and the ratio of the delayed run to the undelayed one (the capacity issue's target: at
1 ms, at least 70% of loopback on the single stream).

Run from the repository root: .venv/bin/python bench/latency.py [--added-rtt-ms 1] [--single 20000]
(needs what bench/e2e.py needs, except the peer's virtualenv).
"""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import e2e
import psycopg2
import redis

from benchlib import (
    BENCH_DIR,
    BenchError,
    base_env,
    entry_point,
    free_port,
    load_average,
    log_directory,
    median,
    postgres_server,
    running,
    start,
    table,
    throwaway_database,
    verdict,
    wait_until,
)
from meta_payloads import single_message_corpus

TARGET_SHARE = 0.7
PROBES = 200


def proxied(stack: ExitStack, delay_ms: float, logs: Path, reached: dict[str, str]) -> Callable[[str], str]:
    """A `reach` for e2e.deploy_ours: each server URL it is given gets a delaying proxy of its own, and
    `reached` the proxied URL by scheme."""

    def reach(url: str) -> str:
        parts = urlsplit(url)
        port = free_port()
        log = logs / f"delay-proxy-{parts.scheme.split('+')[0]}.log"
        route = f"127.0.0.1:{port}={parts.hostname}:{parts.port}"
        argv = [
            sys.executable,
            str(BENCH_DIR / "delay_proxy.py"),
            "--delay-ms",
            str(delay_ms),
            "--route",
            route,
        ]
        stack.enter_context(running([start("delay-proxy", argv, base_env(), log)]))
        wait_until(lambda: "ready" in log.read_text(), 10, "the delaying proxy listening")
        credentials, _, _ = parts.netloc.rpartition("@")
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        reached[parts.scheme] = urlunsplit(parts._replace(netloc=netloc))
        return reached[parts.scheme]

    return reach


def round_trip_ms(redis_url: str, database_url: str) -> tuple[float, float]:
    """PING to Redis and `SELECT 1` to PostgreSQL, mean milliseconds over PROBES each."""
    client = redis.Redis.from_url(redis_url)
    connection = psycopg2.connect(database_url)
    try:
        began = time.perf_counter()
        for _ in range(PROBES):
            client.ping()
        redis_ms = (time.perf_counter() - began) / PROBES * 1000
        with connection.cursor() as cursor:
            began = time.perf_counter()
            for _ in range(PROBES):
                cursor.execute("SELECT 1")
                cursor.fetchone()
        return redis_ms, (time.perf_counter() - began) / PROBES * 1000
    finally:
        client.close()
        connection.close()


def run_one(
    stream: e2e.Stream,
    delay_ms: float,
    round_: int,
    cluster_url: str,
    workdir: Path,
    logs: Path,
    args: argparse.Namespace,
) -> tuple[e2e.Run, tuple[float, float]]:
    label = f"{delay_ms:g}ms-r{round_}"
    run_dir, run_logs = workdir / label, logs / label
    run_dir.mkdir()
    run_logs.mkdir(exist_ok=True)
    with ExitStack() as stack:
        database_url = stack.enter_context(throwaway_database(cluster_url))
        reached: dict[str, str] = {}
        reach = proxied(stack, delay_ms, run_logs, reached)
        deployment = e2e.deploy_ours(stack, database_url, run_dir, run_logs, args, reach=reach)
        rtts = round_trip_ms(reached["redis"], reached["postgresql"])
        return e2e.measure(stream, "ours", round_, deployment, database_url, args), rtts


def main(argv: list[str] | None = None) -> int:
    parser = e2e.build_parser(__doc__ or "")
    parser.add_argument("--added-rtt-ms", type=float, default=1.0, help="round trip added (default 1)")
    args = e2e.parse_args(argv, parser)
    if not args.single:
        raise BenchError("--single must be positive: this benchmark runs the single-message stream")
    delays = (0.0, args.added_rtt_ms)
    print(
        f"bench/latency {time.strftime('%Y-%m-%dT%H:%M:%S%z')} at {e2e.describe_checkout()}:"
        f" {load_average()};"
        f" {args.rounds} rounds of {args.single} single-message bodies, {args.connections} connections,"
        f" round trip added to Redis and PostgreSQL: {delays[0]:g} ms and {delays[1]:g} ms"
    )
    stream = e2e.make_stream(
        "single", single_message_corpus(args.single, args.seed, business_scoped_ids=True)
    )
    results: dict[float, list[tuple[e2e.Run, tuple[float, float]]]] = {delay: [] for delay in delays}
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-latency-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = stack.enter_context(log_directory(args.logs, workdir))
        cluster = stack.enter_context(postgres_server({"track_commit_timestamp": "on"}))
        for round_ in range(1, args.rounds + 1):
            for delay in delays:
                run, rtts = run_one(stream, delay, round_, cluster.url, workdir, logs, args)
                print(
                    f"  +{delay:g} ms (Redis {rtts[0]:.2f} ms, PostgreSQL {rtts[1]:.2f} ms a round trip)"
                    f"  {e2e.describe(run)}",
                    flush=True,
                )
                results[delay].append((run, rtts))
    rows, rates = [], {}
    for delay in delays:
        runs = [run for run, _ in results[delay]]
        rates[delay] = median([run.rate for run in runs])
        rows.append(
            (
                f"+{delay:g} ms",
                f"{median([r[0] for _, r in results[delay]]):.2f}",
                f"{median([r[1] for _, r in results[delay]]):.2f}",
                f"{rates[delay]:.0f}",
                f"{median([e2e.percentile(run.lags, 50) * 1000 for run in runs]):.0f}",
                f"{median([e2e.percentile(run.lags, 99) * 1000 for run in runs]):.0f}",
                "yes" if all(run.complete for run in runs) else "NO",
            )
        )
    headers = (
        "added",
        "Redis RTT ms",
        "PostgreSQL RTT ms",
        "stored events/s",
        "lag p50 ms",
        "lag p99 ms",
        "all stored",
    )
    print(f"\nmedians of {args.rounds} rounds\n{table(headers, rows)}")
    share = rates[delays[1]] / rates[delays[0]]
    rounds = " ".join(
        f"{a[0].rate / b[0].rate:.2f}" for a, b in zip(results[delays[1]], results[delays[0]], strict=True)
    )
    complete = all(run.complete for runs in results.values() for run, _ in runs)
    print(f"+{delays[1]:g} ms against +0 ms: {share:.2f}x (round by round: {rounds})")
    print(
        f"target: >= {TARGET_SHARE:.0%} of the undelayed rate, everything stored:"
        f" {verdict(share >= TARGET_SHARE and complete)}"
    )
    print(f"\nfinished: {load_average()}")
    return 0 if complete else 1


if __name__ == "__main__":
    entry_point(main, "bench/latency")
