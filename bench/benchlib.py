"""Shared by the benchmarks: Procfile commands, child processes, a private Redis, a throwaway database."""

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PROCFILE = ROOT / "Procfile"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
POSTGRES_ADMIN_DSN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


class BenchError(Exception):
    """The benchmark cannot go on, or its result is wrong; the message says which and why."""


# The Procfile


def procfile_command(process_type: str, env: Mapping[str, str]) -> list[str]:
    """The Procfile line for a process type, variables expanded as a shell would, split into arguments."""
    for line in PROCFILE.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process_type:
            return shlex.split(expand(command.strip(), env))
    raise BenchError(f"the Procfile has no `{process_type}:` line")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand $NAME, ${NAME} and ${NAME:-default} (empty counts as unset, as in the shell)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return env.get(name) or match.group(2) or ""

    return _VARIABLE.sub(value, text)


def venv_executable(argv: list[str]) -> list[str]:
    """Run the command's program from this virtualenv when it is installed there (gunicorn, wahooks, rq)."""
    local = VENV_BIN / argv[0]
    return [str(local), *argv[1:]] if local.exists() else argv


# Child processes


@dataclass
class Child:
    """A process this benchmark started, in a session of its own so its children stop with it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the process group we started, then SIGKILL it if it outlives the grace period."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=5)
        # A gunicorn worker could outlive its master; the group id is the pid we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def start(name: str, argv: list[str], env: Mapping[str, str], log: Path) -> Child:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log)


def start_many(
    prefix: str, count: int, argv: list[str], env: Mapping[str, str], logs: Path, label: str
) -> list[Child]:
    """`count` copies of one command, each logging to `<logs>/<prefix>-<label>-<n>.log`."""
    return [start(f"{prefix}-{n}", argv, env, logs / f"{prefix}-{label}-{n}.log") for n in range(count)]


def entry_point(main: Callable[[], int], name: str) -> None:
    """Run a benchmark's main(); a BenchError ends it with its message and exit status 1."""
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        sys.exit(1)


@contextlib.contextmanager
def running(children: list[Child]) -> Iterator[list[Child]]:
    try:
        yield children
    finally:
        for child in children:
            child.stop()


def base_env(**extra: str) -> dict[str, str]:
    """The environment for children: ours, minus settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_CMD_ARGS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(BENCH_DIR)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_until(ready: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ready() until it returns true; BenchError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(interval)
    raise BenchError(f"{what}: not ready after {timeout:.0f} s")


# Redis: a private server, so nothing another engineer runs is touched or flushed


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, without persistence; yields its URL."""
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    argv = [
        "redis-server",
        "--bind", LOOPBACK,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    child = start("redis-server", argv, os.environ, workdir / "redis.log")
    url = f"redis://{LOOPBACK}:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        wait_until(lambda: _pings(client), 10, "redis-server")
        yield url
    finally:
        client.close()
        child.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


# PostgreSQL: a throwaway database, dropped at the end


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """CREATE a fresh database, yield its postgresql:// URL, DROP it (WITH FORCE) at the end."""
    name = f"wahooks_bench_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    try:
        connection = psycopg2.connect(POSTGRES_ADMIN_DSN, connect_timeout=3)
    except psycopg2.OperationalError as error:
        raise BenchError(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {error}") from None
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


# Reporting


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, first column left-aligned, the others right-aligned."""
    cells = [list(map(str, headers)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first, *rest = row
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    return "\n".join(line(row) for row in cells)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@contextlib.contextmanager
def log_directory(keep: Path | None, workdir: Path) -> Iterator[Path]:
    """Where children's logs go: the --logs directory when given (kept), else the run's temporary one."""
    if keep is None:
        yield workdir
        return
    keep.mkdir(parents=True, exist_ok=True)
    yield keep
