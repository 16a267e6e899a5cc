"""bench/e2e: the whole pipeline against pywa storing inline, from the first POST to the last commit.

  ours  the Procfile's web: line and 2 of its worker: line (`wahooks worker`), a private redis-server,
        a fresh database (wahooks migrate, tenants add, catalog import).
  peer  pywa 4.5.0 storing each update inline (bench/peer/pywa_app.py: one INSERT ... ON CONFLICT DO
        NOTHING and a commit per update) under the same web: line with only the app module swapped,
        run from its own virtualenv that holds our versions of the web packages (built on first use).

Both get the same signed bodies from the same client (processes of threads, one keep-alive
connection each where the server allows), as fast as they are answered or at --rate bodies/s:
  single  --single bodies (default 20,000), one inbound text message each;
  mixed   --mixed bodies (default 3,000): 70% single-update, 30% batches of 10-100 (bench/worker.py's).
The bodies use the 2026 shape (contacts with business-scoped user ids, on status changes too)
because pywa drops updates without them.

The clock runs from the first POST to the commit of the last stored event. Each stored row's
commit time comes from PostgreSQL (track_commit_timestamp, on a private cluster started for the
benchmark), so the POST -> commit lag of an event is its row's commit time minus the moment its
body was sent, measured the same way for both. Polling the database (every 0.1 s) only decides
when a run is over: every event stored, or nothing new for --settle seconds after the last answer.

Printed per stream and system: stored events/s, completeness (messages by wamid, statuses by
(wamid, status)), POSTs answered/s, acknowledgement p50/p99, lag p50/p99, and ours/peer ratios.
Each run gets a fresh database (and, for ours, a fresh Redis); everything is stopped and dropped.
Run from the repository root: .venv/bin/python bench/e2e.py [--single 20000 --mixed 3000]
"""

import argparse
import http.client
import importlib.metadata
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path

import psycopg2
import redis
from rq import Worker

from benchlib import (
    BENCH_DIR,
    LOOPBACK,
    ROOT,
    VENV_BIN,
    BenchError,
    Child,
    PostgresServer,
    base_env,
    entry_point,
    free_port,
    load_average,
    log_directory,
    median,
    postgres_server,
    prepare_database,
    private_redis,
    procfile_command,
    running,
    start,
    start_many,
    table,
    throwaway_database,
    venv_executable,
    verdict,
    wait_until,
)
from meta_payloads import Corpus, single_message_corpus, worker_corpus
from webhook.signature import sign

SECRET = "bench-e2e-app-secret"
VERIFY_TOKEN = "bench-e2e-verify-token"
QUEUE = "bench-e2e"
WORKERS = 2
PEER_DIR = BENCH_DIR / "peer"
PEER_APP = "pywa_app:app"
PEER_REQUIREMENT = "pywa==4.5.0"
# Installed in the peer's virtualenv at the versions ours has, so that the same web command serves both.
SHARED_PACKAGES = ("flask", "werkzeug", "psycopg2-binary", "gunicorn", "granian")
OUR_APP = re.compile(r"webhook\.wsgi(:\w+)?")
POLL_SECONDS = 0.1
HTTP_TIMEOUT = 30.0
# The throughput issue's targets: ours/peer stored events/s on the single stream, and ours on the
# mixed stream against the 3,060 events/s measured there before.
TARGET_SINGLE_RATIO = 1.5
TARGET_MIXED_RATE = 1.5 * 3060

# Stored events and their commit times (epoch seconds), per system: (messages, statuses).
STORED = {
    "ours": (
        "SELECT wamid, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8"
        " FROM whatsapp_messages WHERE direction = 'inbound'",
        "SELECT wamid, status, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8"
        " FROM whatsapp_message_statuses",
    ),
    "peer": (
        "SELECT wamid, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 FROM peer_messages",
        "SELECT wamid, status, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 FROM peer_statuses",
    ),
}
COUNT = {
    "ours": "SELECT (SELECT count(*) FROM whatsapp_messages WHERE direction = 'inbound')"
    " + (SELECT count(*) FROM whatsapp_message_statuses)",
    "peer": "SELECT (SELECT count(*) FROM peer_messages) + (SELECT count(*) FROM peer_statuses)",
}
SYSTEMS = ("ours", "peer")


# The bodies


@dataclass
class Stream:
    """One stream's signed bodies and, for each, the events it carries."""

    name: str
    corpus: Corpus
    signatures: list[str]
    messages: dict[str, int]  # message wamid -> index of the body carrying it
    statuses: dict[tuple[str, str], int]  # (wamid, status) -> index of the body carrying it

    @property
    def events(self) -> int:
        return len(self.messages) + len(self.statuses)


def make_stream(name: str, corpus: Corpus) -> Stream:
    messages: dict[str, int] = {}
    statuses: dict[tuple[str, str], int] = {}
    for index, body in enumerate(corpus.bodies):
        for entry in json.loads(body)["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                messages.update((m["id"], index) for m in value.get("messages", []))
                statuses.update(((s["id"], s["status"]), index) for s in value.get("statuses", []))
    if len(messages) + len(statuses) != corpus.expected.events:
        raise BenchError(f"the {name} corpus repeats an event: its wamids are not distinct")
    signatures = [sign(SECRET, body) for body in corpus.bodies]
    return Stream(name, corpus, signatures, messages, statuses)


# The client: processes of threads, each thread one connection; every POST's send time, latency, status


@dataclass
class Post:
    index: int  # of the body
    sent: float  # epoch seconds, just before the request
    seconds: float  # until the answer was read
    status: int  # HTTP status, 0 when no answer came (connection error, timeout)


@dataclass
class ClientShare:
    posts: list[Post]
    cpu_seconds: float
    wall_seconds: float


class KeptAlive:
    """One HTTP/1.1 connection that posts prepared requests and reads just the answer's status and length.

    http.client parses every header into objects and reads through buffered files: about 100 us of CPU a
    POST here, taken from the same 2 cores as the systems measured. This does the least HTTP needs.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def post(self, body: bytes, signature: str) -> int:
        """POST a body to /webhook; the answer's status. Raises OSError when the connection fails."""
        if self.sock is None:
            self.sock = socket.create_connection((LOOPBACK, self.port), timeout=HTTP_TIMEOUT)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer.clear()
        head = (
            f"POST /webhook HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        status, keep_alive = self._read_answer()
        if not keep_alive:
            self.close()
        return status

    def _read_answer(self) -> tuple[int, bool]:
        """The status and whether the server keeps the connection; the answer's body is read and dropped."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        lines = bytes(self.buffer[:end]).decode("latin-1").lower().split("\r\n")
        del self.buffer[: end + 4]
        status = int(lines[0].split()[1])
        headers = dict(line.split(":", 1) for line in lines[1:])
        keep_alive = headers.get("connection", "").strip() != "close" and lines[0].startswith("http/1.1")
        if headers.get("transfer-encoding", "").strip() == "chunked":
            self._skip_chunks()
        else:
            self._skip(int(headers.get("content-length", "0")))
        return status, keep_alive

    def _skip_chunks(self) -> None:
        """Read a chunked body up to its last (empty) chunk; the servers measured send no trailers."""
        while True:
            while (end := self.buffer.find(b"\r\n")) < 0:
                self._receive()
            size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
            del self.buffer[: end + 2]
            self._skip(size + 2)  # the chunk and its CRLF
            if size == 0:
                return

    def _skip(self, length: int) -> None:
        while len(self.buffer) < length:
            self._receive()
        del self.buffer[:length]

    def _receive(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def post_all(
    port: int, jobs: Iterator[int], stream: Stream, start_at: float, rate: float, out: list[Post]
) -> None:
    """Post the bodies this thread draws from jobs, on one connection (reopened when the server closes it)."""
    connection = KeptAlive(port)
    for index in jobs:
        due = start_at + index / rate if rate else start_at
        if (wait := due - time.time()) > 0:
            time.sleep(wait)
        body, signature = stream.corpus.bodies[index], stream.signatures[index]
        sent, began = time.time(), time.perf_counter()
        status = 0
        for attempt in (1, 2):
            reused = connection.sock is not None
            try:
                status = connection.post(body, signature)
                break
            except (ValueError, IndexError, OSError):
                connection.close()
                # A kept-alive connection the server closed meanwhile: the body never reached the app.
                if not (reused and attempt == 1):
                    break
        out.append(Post(index, sent, time.perf_counter() - began, status))
    connection.close()


def client_process(
    port: int, indexes: list[int], stream: Stream, threads: int, start_at: float, rate: float, pipe: Pipe
) -> None:
    """One client process (forked, so the bodies are inherited): threads share its list of bodies."""
    jobs = iter(indexes)  # a list iterator hands each index to exactly one thread
    outs: list[list[Post]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=post_all, args=(port, jobs, stream, start_at, rate, out)) for out in outs
    ]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    times = os.times()
    pipe.send(
        ClientShare([p for out in outs for p in out], times.user + times.system, time.monotonic() - began)
    )
    pipe.close()


class Client:
    """--client-processes processes sharing --connections threads; the bodies dealt round-robin."""

    def __init__(self, port: int, stream: Stream, args: argparse.Namespace) -> None:
        context = multiprocessing.get_context("fork")
        count = args.client_processes
        start_at = time.time() + 0.5  # every thread is up by then
        self.pipes: list[Pipe] = []
        self.processes = []
        for n in range(count):
            receiver, sender = context.Pipe(duplex=False)
            threads = args.connections // count + (n < args.connections % count)
            indexes = list(range(n, len(stream.corpus.bodies), count))
            process = context.Process(
                target=client_process, args=(port, indexes, stream, threads, start_at, args.rate, sender)
            )
            process.start()
            sender.close()
            self.pipes.append(receiver)
            self.processes.append(process)
        self.shares: list[ClientShare] = []

    def finished(self) -> bool:
        """Collect what the processes have sent; true once every one has."""
        for pipe in list(self.pipes):
            if pipe.poll():
                self.shares.append(pipe.recv())
                self.pipes.remove(pipe)
        for process in self.processes:
            if process.exitcode not in (None, 0):
                raise BenchError(f"a client process exited with {process.exitcode}")
        return not self.pipes

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


# Serving


def web_argv(app: str | None, bin_dir: Path, port: int) -> list[str]:
    """The Procfile's web: command on this port, from this virtualenv, with its app module swapped for app.

    For another app, our own modules that the command names (`python -m webhook.serve`, gunicorn's
    `--config python:webhook.gunicorn_conf`) are given by their files instead: the same server and
    settings, without importing our package and what it needs.
    """
    argv = procfile_command("web", {**os.environ, "PORT": str(port)})
    if app is not None:
        targets = [i for i, token in enumerate(argv) if OUR_APP.fullmatch(token)]
        if len(targets) != 1:
            raise BenchError(f"cannot find the one app module (webhook.wsgi:app) in the web: line: {argv}")
        argv[targets[0]] = app
        argv = by_file(argv)
    return venv_executable(argv, bin_dir)


def by_file(argv: list[str]) -> list[str]:
    """argv with `-m package.module` and `python:package.module` of this checkout replaced by file paths."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "-m":
            module = next(tokens)
            out += [str(path)] if (path := module_file(module)) else ["-m", module]
        elif token.startswith("python:") and (path := module_file(token.removeprefix("python:"))):
            out.append(str(path))
        else:
            out.append(token)
    return out


def module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def wait_answering(child: Child, port: int, what: str) -> None:
    """Until the verify-token handshake, which both apps serve on /webhook, answers its challenge."""
    path = f"/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=ready"

    def answers() -> bool:
        if not child.alive():
            raise BenchError(f"{what} exited:\n{child.log_tail()}")
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status == 200 and response.read() == b"ready"
        except (http.client.HTTPException, OSError):
            return False
        finally:
            connection.close()

    wait_until(answers, 60, f"{what} answering", interval=0.1)


@dataclass
class Deployment:
    port: int
    children: list[Child]
    argv: list[str]


def deploy_ours(
    stack: ExitStack,
    database_url: str,
    workdir: Path,
    logs: Path,
    args: argparse.Namespace,
    reach: Callable[[str], str] = str,
) -> Deployment:
    """The Procfile's web line and WORKERS worker lines; `reach` gives the URL they use for a server's URL
    (bench/latency.py routes them through bench/delay_proxy.py)."""
    prepare_database(database_url)
    redis_url = stack.enter_context(private_redis(workdir, durable=args.durable_redis))
    env = base_env(
        DATABASE_URL=reach(database_url),
        REDIS_URL=reach(redis_url),
        WAHOOKS_QUEUE=QUEUE,
        WHATSAPP_APP_SECRET=SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
    )
    port = free_port()
    argv = web_argv(None, VENV_BIN, port)
    web = start("ours-web", argv, {**env, "PORT": str(port)}, logs / "ours-web.log")
    children = [web]
    stack.enter_context(running(children))
    worker_argv = venv_executable(procfile_command("worker", os.environ))
    children += stack.enter_context(
        running(start_many("ours-worker", WORKERS, worker_argv, env, logs, "e2e"))
    )
    store = redis.Redis.from_url(redis_url)
    stack.callback(store.close)
    wait_until(lambda: Worker.count(connection=store) == WORKERS, 60, f"{WORKERS} workers registered")
    wait_answering(web, port, "our web command")
    return Deployment(port, children, argv)


def deploy_peer(stack: ExitStack, database_url: str, bin_dir: Path, logs: Path) -> Deployment:
    with psycopg2.connect(database_url) as db, db.cursor() as cursor:
        cursor.execute((PEER_DIR / "schema.sql").read_text())
    db.close()
    port = free_port()
    env = base_env(
        DATABASE_URL=database_url,
        WHATSAPP_APP_SECRET=SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        PORT=str(port),
        # The app module from bench/peer; the web command's own settings (its config module) from the root.
        PYTHONPATH=os.pathsep.join([str(PEER_DIR), str(ROOT)]),
    )
    argv = web_argv(PEER_APP, bin_dir, port)
    web = start("peer-web", argv, env, logs / "peer-web.log")
    stack.enter_context(running([web]))
    wait_answering(web, port, "the peer's web command")
    return Deployment(port, [web], argv)


def peer_requirements() -> list[str]:
    """pywa, and the web packages at the versions installed here."""
    pins = [PEER_REQUIREMENT]
    for name in SHARED_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def peer_virtualenv(path: Path) -> Path:
    """The peer's virtualenv, (re)built when its requirements change; returns its bin directory."""
    stamp = path / "bench-requirements.txt"
    wanted = "\n".join(peer_requirements()) + "\n"
    if not (stamp.exists() and stamp.read_text() == wanted):
        print(f"  building the peer's virtualenv {path}: {' '.join(wanted.split())}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True, timeout=120)
        install = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", *wanted.split()]
        done = subprocess.run(install, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise BenchError(f"installing the peer failed:\n{done.stdout}{done.stderr}")
        stamp.write_text(wanted)
    return path / "bin"


# One run


@dataclass
class Run:
    stream: str
    system: str
    round: int
    posts: list[Post]
    client_busy: float  # the busiest client process's CPU time / its wall time
    messages: dict[str, float]  # stored message wamid -> commit time
    statuses: dict[tuple[str, str], float]
    expected_messages: int
    expected_statuses: int
    first_sent: float = 0.0
    last_commit: float = 0.0
    lags: list[float] = field(default_factory=list)
    stray: int = 0  # stored rows for events that were never sent

    @property
    def stored(self) -> int:
        return len(self.messages) + len(self.statuses)

    @property
    def complete(self) -> bool:
        return self.stored == self.expected_messages + self.expected_statuses

    @property
    def seconds(self) -> float:
        return self.last_commit - self.first_sent

    @property
    def rate(self) -> float:
        return self.stored / self.seconds if self.seconds > 0 else 0.0

    @property
    def last_answer(self) -> float:
        return max(p.sent + p.seconds for p in self.posts)

    @property
    def answer_rate(self) -> float:
        return len(self.posts) / (self.last_answer - self.first_sent)

    def acks_ms(self) -> list[float]:
        return [p.seconds * 1000 for p in self.posts if p.status == 200]

    def failures(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for post in self.posts:
            if post.status != 200:
                counts[post.status] = counts.get(post.status, 0) + 1
        return counts


def measure(
    stream: Stream,
    system: str,
    round_: int,
    deployment: Deployment,
    database_url: str,
    args: argparse.Namespace,
) -> Run:
    db = psycopg2.connect(database_url)
    db.autocommit = True
    try:
        client = Client(deployment.port, stream, args)
        try:
            wait_done(client, db, system, stream, deployment, args)
        finally:
            client.stop()
        return collect(stream, system, round_, client.shares, db)
    finally:
        db.close()


def wait_done(
    client: Client,
    db: psycopg2.extensions.connection,
    system: str,
    stream: Stream,
    deployment: Deployment,
    args: argparse.Namespace,
) -> None:
    """Until every event is stored, or nothing new is for --settle seconds after the last answer."""
    deadline = time.monotonic() + args.timeout
    stored, changed = -1, time.monotonic()
    while True:
        finished = client.finished()
        with db.cursor() as cursor:
            cursor.execute(COUNT[system])
            now_stored = cursor.fetchone()[0]
        now = time.monotonic()
        if now_stored != stored:
            stored, changed = now_stored, now
        if finished and (stored >= stream.events or now - changed > args.settle):
            return
        crashed = [c for c in deployment.children if not c.alive()]
        if crashed:
            raise BenchError(
                f"{crashed[0].name} exited with {crashed[0].process.returncode}:\n{crashed[0].log_tail()}"
            )
        if now > deadline:
            raise BenchError(
                f"{system}, {stream.name} stream: {stored} of {stream.events} events"
                f" after {args.timeout:.0f} s"
            )
        time.sleep(POLL_SECONDS)


def collect(
    stream: Stream, system: str, round_: int, shares: list[ClientShare], db: psycopg2.extensions.connection
) -> Run:
    """Join what the database holds (with commit times) to what was sent and when."""
    messages_sql, statuses_sql = STORED[system]
    with db.cursor() as cursor:
        cursor.execute(messages_sql)
        message_rows = cursor.fetchall()
        cursor.execute(statuses_sql)
        status_rows = cursor.fetchall()
    posts = sorted((p for share in shares for p in share.posts), key=lambda p: p.index)
    if len(posts) != len(stream.corpus.bodies):
        raise BenchError(f"the client posted {len(posts)} of {len(stream.corpus.bodies)} bodies (see above)")
    sent_at = {p.index: p.sent for p in posts}
    run = Run(
        stream.name,
        system,
        round_,
        posts,
        max(share.cpu_seconds / share.wall_seconds for share in shares),
        {wamid: committed for wamid, committed in message_rows if wamid in stream.messages},
        {(w, s): committed for w, s, committed in status_rows if (w, s) in stream.statuses},
        len(stream.messages),
        len(stream.statuses),
    )
    run.stray = len(message_rows) + len(status_rows) - run.stored
    if None in run.messages.values() or None in run.statuses.values():
        raise BenchError("PostgreSQL gave no commit timestamp: track_commit_timestamp must be on")
    run.first_sent = min(p.sent for p in posts)
    commits = [*run.messages.values(), *run.statuses.values()]
    run.last_commit = max(commits, default=run.first_sent)
    run.lags = [
        *(committed - sent_at[stream.messages[w]] for w, committed in run.messages.items()),
        *(committed - sent_at[stream.statuses[k]] for k, committed in run.statuses.items()),
    ]
    return run


def run_one(
    stream: Stream,
    system: str,
    round_: int,
    cluster: PostgresServer,
    peer_bin: Path,
    workdir: Path,
    logs: Path,
    args: argparse.Namespace,
) -> Run:
    label = f"{stream.name}-{system}-r{round_}"
    run_dir = workdir / label
    run_dir.mkdir()
    run_logs = logs / label
    run_logs.mkdir(exist_ok=True)
    with ExitStack() as stack:
        database_url = stack.enter_context(throwaway_database(cluster.url))
        if system == "ours":
            deployment = deploy_ours(stack, database_url, run_dir, run_logs, args)
        else:
            deployment = deploy_peer(stack, database_url, peer_bin, run_logs)
        if round_ == 1:
            print(f"  [{stream.name}] {system} web: {' '.join(deployment.argv)}", flush=True)
        return measure(stream, system, round_, deployment, database_url, args)


# Report


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def describe(run: Run) -> str:
    acks = run.acks_ms()
    failures = ", ".join(f"{n} x {'no answer' if s == 0 else s}" for s, n in sorted(run.failures().items()))
    not_200 = f"; NOT 200: {failures}" if failures else ""
    return (
        f"  round {run.round}  {run.stream:6} {run.system:4}"
        f"  {run.stored}/{run.expected_messages + run.expected_statuses} events stored"
        f" in {run.seconds:6.2f} s = {run.rate:6.0f} events/s;"
        f" {len(run.posts)} POSTs answered at {run.answer_rate:5.0f}/s"
        f" (p50 {percentile(acks, 50):.1f} ms, p99 {percentile(acks, 99):.1f} ms{not_200});"
        f" lag p50 {percentile(run.lags, 50) * 1000:.0f} ms, p99 {percentile(run.lags, 99) * 1000:.0f} ms;"
        f" last commit {run.last_commit - run.last_answer:+.2f} s after the last answer;"
        f" client busiest process {100 * run.client_busy:.0f}% CPU"
    )


def summary_row(runs: list[Run]) -> tuple[str, ...]:
    """Medians over the rounds of one stream and system."""
    first = runs[0]
    return (
        first.system,
        f"{median([r.rate for r in runs]):.0f}",
        share(int(median([len(r.messages) for r in runs])), first.expected_messages),
        share(int(median([len(r.statuses) for r in runs])), first.expected_statuses),
        f"{median([r.answer_rate for r in runs]):.0f}",
        f"{median([percentile(r.acks_ms(), 50) for r in runs]):.1f}",
        f"{median([percentile(r.acks_ms(), 99) for r in runs]):.1f}",
        f"{median([percentile(r.lags, 50) * 1000 for r in runs]):.0f}",
        f"{median([percentile(r.lags, 99) * 1000 for r in runs]):.0f}",
        str(sum(sum(r.failures().values()) for r in runs)),
    )


def report(runs: list[Run], streams: list[Stream]) -> bool:
    headers = (
        "system",
        "stored events/s",
        "messages stored",
        "statuses stored",
        "POSTs answered/s",
        "ack p50 ms",
        "ack p99 ms",
        "lag p50 ms",
        "lag p99 ms",
        "not 200",
    )
    problems = []
    for stream in streams:
        by_system = {s: [r for r in runs if r.stream == stream.name and r.system == s] for s in SYSTEMS}
        print(
            f"\n{stream.name} stream: {len(stream.corpus.bodies)} bodies, {len(stream.messages)} messages"
            f" + {len(stream.statuses)} statuses (medians of {len(by_system['ours'])} rounds)"
        )
        print(table(headers, [summary_row(by_system[s]) for s in SYSTEMS]))
        ours_rate = median([r.rate for r in by_system["ours"]])
        peer_rate = median([r.rate for r in by_system["peer"]])
        ours_p99 = median([percentile(r.acks_ms(), 99) for r in by_system["ours"]])
        peer_p99 = median([percentile(r.acks_ms(), 99) for r in by_system["peer"]])
        ours_lag = median([percentile(r.lags, 99) for r in by_system["ours"]])
        peer_lag = median([percentile(r.lags, 99) for r in by_system["peer"]])
        ratios = " ".join(
            f"{o.rate / p.rate:.2f}" for o, p in zip(by_system["ours"], by_system["peer"], strict=True)
        )
        print(
            f"ours/peer: stored events/s {ours_rate / peer_rate:.2f}x (round by round: {ratios}),"
            f" ack p99 {ours_p99 / peer_p99:.2f}x, lag p99 {ours_lag / peer_lag:.2f}x"
        )
        complete = all(r.complete for r in by_system["ours"])
        if stream.name == "single":
            met = ours_rate / peer_rate >= TARGET_SINGLE_RATIO and complete
            print(f"target: ours >= {TARGET_SINGLE_RATIO}x the peer, 100% stored: {verdict(met)}")
        else:
            met = ours_rate >= TARGET_MIXED_RATE and complete
            print(f"target: ours >= {TARGET_MIXED_RATE:.0f} events/s, 100% stored: {verdict(met)}")
        for run in by_system["ours"]:
            if not run.complete:
                problems.append(
                    f"round {run.round} {stream.name}: ours stored {run.stored} of {stream.events} events"
                )
            if run.failures():
                problems.append(
                    f"round {run.round} {stream.name}: ours answered {run.failures()} (status: count)"
                )
        problems += [
            f"round {r.round} {stream.name} {r.system}: {r.stray} stored rows were never sent"
            for r in by_system["ours"] + by_system["peer"]
            if r.stray
        ]
    print(f"\ncorrectness checks of ours: {verdict(not problems)}")
    for problem in problems:
        print(f"  problem: {problem}")
    return not problems


# Main


def default_peer_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "wahooks-bench" / "peer-venv"


def describe_checkout() -> str:
    """The commit measured, and whether the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    commit = git("rev-parse", "--short", "HEAD").strip()
    if not commit:
        return f"{ROOT} (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return f"commit {commit}{' with uncommitted changes' if dirty else ''}"


def parse_args(argv: list[str] | None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    parser = parser or build_parser(__doc__ or "")
    args = parser.parse_args(argv)
    if args.connections < args.client_processes:
        parser.error("--connections must be at least --client-processes")
    return args


def build_parser(description: str) -> argparse.ArgumentParser:
    """e2e's options (bench/latency.py adds its own to them)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--single", type=int, default=20000, help="bodies in the single stream (default 20000; 0 skips it)"
    )
    parser.add_argument(
        "--mixed", type=int, default=3000, help="bodies in the mixed stream (default 3000; 0 skips it)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per stream and system (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="client connections (default 8)")
    parser.add_argument(
        "--client-processes", type=int, default=2, help="client processes sharing them (default 2)"
    )
    parser.add_argument(
        "--rate", type=float, default=0, help="bodies/s to send (default 0: as fast as answered)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=10,
        help="seconds without a new event that end an incomplete run (default 10)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds one run may take (default 900)")
    parser.add_argument("--seed", type=int, default=1, help="corpus random seed (default 1)")
    parser.add_argument(
        "--durable-redis",
        action="store_true",
        help="run our Redis with an fsync-always append-only file, as production should",
    )
    parser.add_argument(
        "--peer-venv",
        type=Path,
        default=default_peer_venv(),
        help="the peer's virtualenv (default %(default)s)",
    )
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    commit = describe_checkout()
    print(
        f"bench/e2e {started} at {commit}: {load_average()}; {args.rounds} rounds,"
        f" {args.connections} connections in {args.client_processes} client processes,"
        f" rate {args.rate or 'unlimited'}"
    )
    streams = []
    if args.single:
        streams.append(
            make_stream("single", single_message_corpus(args.single, args.seed, business_scoped_ids=True))
        )
    if args.mixed:
        streams.append(make_stream("mixed", worker_corpus(args.mixed, args.seed, business_scoped_ids=True)))
    peer_bin = peer_virtualenv(args.peer_venv)
    with tempfile.TemporaryDirectory(prefix="wahooks-bench-e2e-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        logs = stack.enter_context(log_directory(args.logs, workdir))
        cluster = stack.enter_context(postgres_server({"track_commit_timestamp": "on"}))
        runs = []
        for stream in streams:
            for round_ in range(1, args.rounds + 1):
                for system in SYSTEMS:
                    run = run_one(stream, system, round_, cluster, peer_bin, workdir, logs, args)
                    print(describe(run), flush=True)
                    runs.append(run)
        passed = report(runs, streams)
        print(f"\nfinished: {load_average()}")
    return 0 if passed else 1


if __name__ == "__main__":
    entry_point(main, "bench/e2e")
