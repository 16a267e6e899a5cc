"""bench/sentinel: what a Redis failover loses, what WAIT and min-replicas-to-write close, what WAIT costs.

Every run starts a primary, its replicas and three Sentinels on loopback (throwaway.replicated_redis:
an append-only file on each, fsynced at every write on the primary, as --replica-fsync says on the
replicas) and the Procfile's web line (2 processes) against REDIS_URL's Sentinel form. Three parts:

1. failover: --clients threads post distinct signed bodies as fast as they are answered; the primary
   is SIGKILLed after --kill-after-s, and posting goes on until the answers have been 200 again for a
   second. Counted: bodies answered 200 that the promoted replica does not hold (lost), and when the
   503s began and ended. --runs runs without WAIT, then as many with WAHOOKS_REDIS_WAIT_REPLICAS=1.
   Two replicas, so that one is left to acknowledge WAIT after the other is promoted.
2. lagging: the same, but both replicas are frozen (SIGSTOP) for --freeze-s, as replicas stalled or cut
   off, and the primary is SIGKILLed as they resume: what the primary took meanwhile is lost with it,
   except what already sat in the kernel's socket buffers (a killed process's sockets still deliver
   it; a crashed host's would not). Without settings, with the primary's min-replicas-to-write 1 and
   min-replicas-max-lag 1, and with WAIT.
3. cost: wrk (bench/web.py's load, distinct ~2 KB bodies) against the web process, without and with
   WAIT in turn, --rounds times; POSTs/s and the ratio WAIT / no WAIT per round.

Run from the repository root: .venv/bin/python bench/sentinel.py [--runs 5] [--rounds 5]
                              .venv/bin/python bench/sentinel.py --parts lagging --pad-bytes 16384
(needs redis-server and wrk).
"""

import argparse
import itertools
import os
import signal
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
import web
from e2e import KeptAlive

from benchlib import (
    LOOPBACK,
    BenchError,
    Child,
    base_env,
    entry_point,
    free_port,
    load_average,
    log_directory,
    median,
    procfile_command,
    running,
    start,
    table,
    venv_executable,
    wait_until,
)
from runtime.inbox import InboxKeys
from throwaway import ReplicatedRedis, replicated_redis
from webhook.signature import sign

QUEUE = "bench-sentinel"
WAIT_ENV = {"WAHOOKS_REDIS_WAIT_REPLICAS": "1", "WAHOOKS_REDIS_WAIT_TIMEOUT_MS": "100"}
MIN_REPLICAS = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "1")
RECOVERED_SECONDS = 1.0  # 200s again for this long after the first 503: the failover is over


@dataclass
class Answer:
    body: bytes
    at: float  # monotonic seconds, when the answer was read
    status: int  # 0: no answer (connection refused or reset)


class Load:
    """Client threads posting distinct signed bodies, one kept-alive connection each, until stopped."""

    def __init__(self, port: int, connections: int, tag: str, pad_bytes: int) -> None:
        self.port = port
        self.tag = tag
        self.pad = b"x" * pad_bytes
        self.numbers = itertools.count()  # next() on a count is atomic under the GIL
        self.answers: list[Answer] = []  # list.append is atomic too
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._post) for _ in range(connections)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()

    def _post(self) -> None:
        connection = KeptAlive(self.port)
        while not self.stopped.is_set():
            body = b'{"object":"whatsapp_business_account","bench":"%s","n":%d,"pad":"%s"}' % (
                self.tag.encode(),
                next(self.numbers),
                self.pad,
            )
            try:
                status = connection.post(body, sign(web.SECRET, body))
            except (OSError, ValueError, IndexError):
                connection.close()
                status = 0
            self.answers.append(Answer(body, time.monotonic(), status))
        connection.close()

    def since(self, moment: float) -> list[Answer]:
        return [answer for answer in self.answers if answer.at >= moment]


def serve(group: ReplicatedRedis, extra: dict[str, str], logs: Path, name: str) -> tuple[Child, int]:
    """The Procfile's web line (2 processes) on a free loopback port, answering."""
    port = free_port()
    env = base_env(
        REDIS_URL=group.url,
        WAHOOKS_QUEUE=QUEUE,
        WHATSAPP_APP_SECRET=web.SECRET,
        WHATSAPP_VERIFY_TOKEN=web.VERIFY_TOKEN,
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_LEVEL="ERROR",
        **extra,
    )
    argv = venv_executable([word.replace("0.0.0.0", LOOPBACK) for word in procfile_command("web", env)])
    child = start(name, argv, env, logs / f"{name}.log")

    def answering() -> bool:
        if not child.alive():
            raise BenchError(f"the web process exited:\n{child.log_tail()}")
        return web.request(port, "GET", "/healthz", timeout=1)[0] == 200

    wait_until(answering, 30, "the web process answering")
    return child, port


def promoted_inbox(group: ReplicatedRedis) -> set[bytes]:
    """The bodies in the inbox of the replica, once the Sentinels have promoted it."""
    wait_until(lambda: group.promoted() is not None, 30, "a replica promoted")
    promoted = group.promoted()
    assert promoted is not None
    return set(promoted.lrange(InboxKeys(QUEUE).inbox, 0, -1))


@dataclass
class Failover:
    answered: int  # 200s
    lost: int  # of them, not on the promoted replica
    lost_before_kill: int  # of those, answered before the SIGKILL
    refused: int  # 503s
    other: int  # any other answer, or none
    first_refusal_s: float  # after the kill
    last_refusal_s: float


def recovered(load: Load, killed: float) -> bool:
    """A failure seen since the kill, and only 200s for RECOVERED_SECONDS since the last one."""
    after = load.since(killed)
    failures = [answer.at for answer in after if answer.status != 200]
    return bool(failures) and time.monotonic() - max(failures) > RECOVERED_SECONDS


def failover(args: argparse.Namespace, extra: dict[str, str], logs: Path, name: str) -> Failover:
    with (
        tempfile.TemporaryDirectory(prefix="wahooks-bench-sentinel-") as directory,
        replicated_redis(Path(directory), replicas=2, replica_fsync=args.replica_fsync) as group,
    ):
        child, port = serve(group, extra, logs, name)
        with running([child]):
            with Load(port, args.clients, name, args.pad_bytes) as load:
                time.sleep(args.kill_after_s)
                killed = time.monotonic()
                group.primary.kill()
                wait_until(lambda: recovered(load, killed), 60, "200s again after the failover", 0.05)
            held = promoted_inbox(group)
    answers = load.answers
    accepted = [answer for answer in answers if answer.status == 200]
    lost = [answer for answer in accepted if answer.body not in held]
    failures = [answer.at - killed for answer in answers if answer.status != 200]
    return Failover(
        answered=len(accepted),
        lost=len(lost),
        lost_before_kill=sum(answer.at < killed for answer in lost),
        refused=sum(answer.status == 503 for answer in answers),
        other=sum(answer.status not in (200, 503) for answer in answers),
        first_refusal_s=min(failures),
        last_refusal_s=max(failures),
    )


@dataclass
class Lag:
    answered: int  # 200s while the replicas were frozen: on the primary only, unless WAIT is on
    refused: int  # 503s meanwhile
    first_refusal_s: float | None  # after the freeze began
    lost: int  # bodies answered 200 that the promoted replica does not hold


def lagging(
    args: argparse.Namespace, primary_settings: tuple[str, ...], extra: dict[str, str], logs: Path, name: str
) -> Lag:
    """The failover of `failover`, but the primary dies while both replicas are frozen; they resume
    at once after it, and the Sentinels promote one."""
    with (
        tempfile.TemporaryDirectory(prefix="wahooks-bench-sentinel-") as directory,
        replicated_redis(
            Path(directory), replicas=2, replica_fsync=args.replica_fsync, primary_settings=primary_settings
        ) as group,
    ):
        child, port = serve(group, extra, logs, name)
        with running([child]):
            with Load(port, args.clients, name, args.pad_bytes) as load:
                time.sleep(args.kill_after_s)
                frozen = time.monotonic()
                for replica in group.replicas:
                    replica.signal_group(signal.SIGSTOP)
                try:
                    time.sleep(args.freeze_s)
                finally:
                    killed = time.monotonic()
                    group.primary.kill()
                    for replica in group.replicas:
                        replica.signal_group(signal.SIGCONT)
                wait_until(lambda: recovered(load, killed), 60, "200s again after the failover", 0.05)
            held = promoted_inbox(group)
    during = [answer for answer in load.since(frozen) if answer.at < killed]
    refusals = [answer.at - frozen for answer in during if answer.status == 503]
    if any(answer.status not in (200, 503) for answer in load.answers):
        raise BenchError(f"{name}: answers other than 200 and 503: see {logs / name}.log")
    return Lag(
        answered=sum(answer.status == 200 for answer in during),
        refused=len(refusals),
        first_refusal_s=min(refusals) if refusals else None,
        lost=sum(answer.status == 200 and answer.body not in held for answer in load.answers),
    )


def cpu_seconds(groups: set[int]) -> float:
    """CPU seconds (user + system) the live processes of these process groups have used so far."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process is gone
            continue
        if int(fields[2]) in groups:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Cost:
    round: int
    setting: str
    rate: float  # POSTs/s answered 2xx
    p99_ms: float
    refused: int  # non-2xx answers
    web_us: float  # CPU of the web processes per POST answered
    redis_us: float  # CPU of the primary and the replica per POST answered


def cost(args: argparse.Namespace, logs: Path, workdir: Path) -> list[Cost]:
    """One wrk run per setting and round, settings alternating, each on a fresh web process and an
    emptied Redis (the waiting markers too: every body is new to each run)."""
    web.write_bodies(workdir, int(args.seconds * args.max_rate), args.threads)
    runs: list[Cost] = []
    (workdir / "redis").mkdir()
    with replicated_redis(workdir / "redis", replica_fsync=args.replica_fsync) as group:
        primary = redis.Redis(host=LOOPBACK, port=group.primary_port)
        servers = {child.process.pid for child in (group.primary, *group.replicas)}
        for round_ in range(1, args.rounds + 1):
            for setting, extra in (("no WAIT", {}), ("WAIT 1 100", WAIT_ENV)):
                primary.flushdb()
                child, port = serve(group, extra, logs, f"web-cost-{round_}-{len(runs)}")
                with running([child]):
                    before = cpu_seconds({child.process.pid}), cpu_seconds(servers)
                    result = web.run_wrk(f"http://{LOOPBACK}:{port}/webhook", args, args.seconds, workdir)
                    after = cpu_seconds({child.process.pid}), cpu_seconds(servers)
                answered = result["requests"] - result["status"]
                run = Cost(
                    round_,
                    setting,
                    answered / (result["duration_us"] / 1e6),
                    result["p99_us"] / 1000,
                    int(result["status"]),
                    (after[0] - before[0]) / answered * 1e6,
                    (after[1] - before[1]) / answered * 1e6,
                )
                runs.append(run)
                print(
                    f"  round {round_}, {setting}: {run.rate:.0f} POSTs/s, p99 {run.p99_ms:.1f} ms",
                    flush=True,
                )
    return runs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="failovers per setting (default 5)")
    parser.add_argument(
        "--clients", type=int, default=16, help="client threads of the failover load (default 16)"
    )
    parser.add_argument(
        "--kill-after-s", type=float, default=1.5, help="load before the kill or freeze (default 1.5)"
    )
    parser.add_argument("--freeze-s", type=float, default=3, help="the lagging replica's freeze (default 3)")
    parser.add_argument(
        "--pad-bytes",
        type=int,
        default=1024,
        help="padding in each failover and lagging body (default 1024); with 16384 a frozen replica's"
        " stream outgrows the kernel's socket buffers, and what is left in the primary's memory dies with it",
    )
    parser.add_argument("--replica-fsync", default="always", choices=["always", "everysec", "no"])
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per setting (default 3)")
    parser.add_argument("--seconds", type=float, default=5, help="length of a wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--max-rate", type=int, default=8000, help="bodies written per wrk second (default 8000)"
    )
    parser.add_argument(
        "--parts", default="failover,lagging,cost", help="which measurements (default all three)"
    )
    parser.add_argument("--logs", type=Path, help="keep the web processes' logs in this directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parts = set(args.parts.split(","))
    print(f"bench/sentinel {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: {load_average()}")
    print(f"  the replica's appendfsync: {args.replica_fsync}; the web: the Procfile's line, 2 processes")
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-sentinel-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = stack.enter_context(log_directory(args.logs, workdir))
        if "failover" in parts:
            print(f"\nfailover: {args.clients} clients, primary SIGKILLed after {args.kill_after_s:g} s")
            rows = []
            for setting, extra in (("no WAIT", {}), ("WAIT 1 100", WAIT_ENV)):
                for run in range(1, args.runs + 1):
                    f = failover(args, extra, logs, f"web-failover-{len(rows)}")
                    rows.append(
                        (
                            setting,
                            run,
                            f.answered,
                            f.lost,
                            f.lost_before_kill,
                            f.refused,
                            f.other,
                            f"{f.first_refusal_s:.2f}-{f.last_refusal_s:.2f}",
                        )
                    )
                    print(f"  {setting} run {run}: lost {f.lost} of {f.answered}", flush=True)
            headers = [
                "setting",
                "run",
                "200s",
                "lost",
                "lost, answered before the kill",
                "503s",
                "other",
                "503s from-to s",
            ]
            print(table(headers, rows))
        if "lagging" in parts:
            print(
                f"\nlagging replicas: both frozen {args.freeze_s:g} s under the load, the primary SIGKILLed"
                " as they resume"
            )
            rows = []
            settings = (
                ("none", (), {}),
                ("min-replicas 1, max-lag 1", MIN_REPLICAS, {}),
                ("WAIT 1 100", (), WAIT_ENV),
            )
            for setting, primary_settings, extra in settings:
                lag = lagging(args, primary_settings, extra, logs, f"web-lagging-{len(rows)}")
                first = "-" if lag.first_refusal_s is None else f"{lag.first_refusal_s:.2f}"
                rows.append((setting, lag.answered, lag.refused, first, lag.lost))
            headers = ["setting", "200s while frozen", "503s while frozen", "first 503 after s", "lost"]
            print(table(headers, rows))
        if "cost" in parts:
            print(f"\ncost: wrk -t{args.threads} -c{args.connections}, {args.rounds} x {args.seconds:g} s")
            runs = cost(args, logs, workdir)
            rows = [
                (
                    f"round {c.round}",
                    c.setting,
                    f"{c.rate:.0f}",
                    f"{c.p99_ms:.1f}",
                    c.refused,
                    f"{c.web_us:.0f}",
                    f"{c.redis_us:.0f}",
                )
                for c in runs
            ]
            headers = [
                "round",
                "setting",
                "POSTs/s",
                "p99 ms",
                "non-2xx",
                "web CPU us/POST",
                "Redis CPU us/POST",
            ]
            print(table(headers, rows))
            by = {(c.round, c.setting): c for c in runs}
            for label, value in (
                ("POSTs/s", lambda c: c.rate),
                ("web CPU/POST", lambda c: c.web_us),
                ("Redis CPU/POST", lambda c: c.redis_us),
            ):
                ratios = [
                    value(by[(r, "WAIT 1 100")]) / value(by[(r, "no WAIT")])
                    for r in range(1, args.rounds + 1)
                ]
                print(
                    f"  {label}, WAIT / no WAIT per round: {', '.join(f'{ratio:.2f}' for ratio in ratios)};"
                    f" median {median(ratios):.2f}"
                )
        print(f"\nfinished: {load_average()}")
    return 0


if __name__ == "__main__":
    entry_point(main, "bench/sentinel")
