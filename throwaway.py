"""Throwaway servers and processes for the tests and the benchmarks: children in sessions of their own,
a private redis-server, a private PostgreSQL cluster or a throwaway database, the Procfile's commands.

It sits at the repository root, outside the product packages (pyproject installs only cli, models,
runtime, webhook and workers), because tests/ and bench/ both need it and neither should import the
other: tests/ is a pytest package, bench/ a folder of scripts run by hand. It imports no pytest: a
program that is missing raises Unavailable, which the tests turn into a skip and a benchmark into
an error message.
"""

import contextlib
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

PROJECT_ROOT = Path(__file__).resolve().parent
PROCFILE = PROJECT_ROOT / "Procfile"
LOOPBACK = "127.0.0.1"

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


class Unavailable(RuntimeError):
    """A program or server that a throwaway server needs is not there."""


class NotReady(TimeoutError):
    """What wait_until waited for did not happen in time."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll until condition() holds; return the seconds it took, or raise NotReady naming what."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise NotReady(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


# The Procfile


def procfile_line(process_type: str) -> str:
    """The Procfile's command for a process type, as written."""
    for line in PROCFILE.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process_type:
            return command.strip()
    raise LookupError(f"the Procfile has no `{process_type}:` line")


def procfile_command(process_type: str, env: Mapping[str, str]) -> list[str]:
    """The Procfile's command with its variables expanded as a shell would, split into arguments."""
    return shlex.split(expand(procfile_line(process_type), env))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand $NAME, ${NAME} and ${NAME:-default} (empty counts as unset, as in the shell)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return env.get(name) or match.group(2) or ""

    return _VARIABLE.sub(value, text)


# Child processes


@dataclass
class Child:
    """A process we started, in a session of its own so that whatever it forks stops with it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as the OOM killer or a lost machine would."""
        self.signal_group(signal.SIGKILL)
        self.process.wait()

    def stop(self, grace_seconds: float = 10.0) -> None:
        stop_all([self], grace_seconds)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


def stop_all(children: list[Child], grace_seconds: float = 10.0) -> None:
    """SIGTERM every child's process group at once, then SIGKILL the groups that outlive the grace period."""
    for child in children:
        if child.alive():
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.signal_group(signal.SIGKILL)
            child.process.wait(timeout=5)
        # A web server's worker can outlive its master; the group id is the pid we started.
        child.signal_group(signal.SIGKILL)


def start(name: str, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path = PROJECT_ROOT) -> Child:
    """Start argv in a new session, its output appended to log."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
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


@contextlib.contextmanager
def running(children: list[Child]) -> Iterator[list[Child]]:
    """Stop the children on the way out, whatever happened."""
    try:
        yield children
    finally:
        stop_all(children)


# Redis


class RedisServer:
    """A private redis-server on a free loopback port; a restart keeps the port and the directory.

    durable: an append-only file fsynced at every write and no eviction, the settings under which
    an acknowledged body survives a restart; otherwise no persistence at all.
    """

    def __init__(self, directory: Path, durable: bool = True) -> None:
        self.directory = directory
        self.durable = durable
        self.port = free_port()
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process if self.child else None

    def start(self) -> None:
        if shutil.which("redis-server") is None:
            raise Unavailable("redis-server is not installed (apt-get install -y redis-server)")
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"]
            if self.durable
            else ["--appendonly", "no"]
        )
        argv = [
            "redis-server",
            "--bind", LOOPBACK,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            *persistence,
        ]  # fmt: skip
        self.child = start("redis-server", argv, os.environ, self.directory / "redis.log")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            wait_until(lambda: _pings(client), 10, "redis-server answering", interval=0.05)
        finally:
            client.close()

    def kill(self) -> None:
        assert self.child is not None, "kill() before start()"
        self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def redis_server(directory: Path | None = None, durable: bool = True) -> Iterator[RedisServer]:
    """A started RedisServer, stopped at the end; its files go in directory (else a temporary one)."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wahooks-redis-")))
        server = RedisServer(directory, durable)
        stack.callback(server.stop)
        server.start()
        yield server


# Redis with replicas, and Sentinels

SENTINEL_PRIMARY_NAME = "wahooks"


@dataclass
class ReplicatedRedis:
    """A primary and its replicas on loopback, each with an append-only file.

    With `sentinels`, three Sentinels watch the primary (quorum 2) and `url` is REDIS_URL's Sentinel
    form; without, `url` names the primary itself.
    """

    primary: Child
    replicas: list[Child]
    primary_port: int
    replica_ports: list[int]
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        if not self.sentinel_ports:
            return f"redis://{LOOPBACK}:{self.primary_port}/0"
        hosts = ",".join(f"{LOOPBACK}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_PRIMARY_NAME}/0"

    def replicating(self) -> bool:
        """Every replica acknowledges the primary's writes, and every Sentinel knows every replica.

        A replica's link is up before the primary streams writes to it (after a first sync, the primary
        waits for the replica's first acknowledgement, which comes within a second), so a WAIT tells;
        and it tells only once the replicas are connected, since until then a write is not replicated
        at all and WAIT has nothing to wait for. Its write goes to database 15, away from what tests
        and benchmarks read.
        """
        primary = redis.Redis(host=LOOPBACK, port=self.primary_port, db=15, socket_timeout=1)
        count = len(self.replica_ports)
        try:
            if primary.info("replication")["connected_slaves"] < count:
                return False
            primary.set("throwaway:replicating", 1)
            return primary.wait(count, 100) == count and all(
                len(_client(port).sentinel_slaves(SENTINEL_PRIMARY_NAME)) == count
                for port in self.sentinel_ports
            )
        except redis.RedisError:
            return False

    def promoted(self) -> redis.Redis | None:
        """A client of the replica that has become the primary, if one has."""
        for port in self.replica_ports:
            client = _client(port)
            try:
                if client.info("replication")["role"] == "master":
                    return client
            except redis.RedisError:
                pass
        return None


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=1, socket_connect_timeout=1)


@contextlib.contextmanager
def replicated_redis(
    directory: Path,
    replicas: int = 1,
    sentinels: bool = True,
    down_after_ms: int = 1000,
    replica_fsync: str = "always",
    primary_settings: tuple[str, ...] = (),
) -> Iterator[ReplicatedRedis]:
    """A started ReplicatedRedis, its files in directory, stopped at the end.

    The primary fsyncs its append-only file at every write, the replicas as `replica_fsync` says;
    `primary_settings` are more redis-server options for the primary (e.g. --min-replicas-to-write 1).
    Sentinels mark the primary down after `down_after_ms` (their default, 30 s, is far too long here).
    """
    if shutil.which("redis-server") is None:
        raise Unavailable("redis-server is not installed (apt-get install -y redis-server)")
    primary_port = free_port()
    replica_ports = [free_port() for _ in range(replicas)]
    sentinel_ports = [free_port() for _ in range(3 if sentinels else 0)]
    # A replica's sync starts at once (Redis would wait 5 s for more replicas to share it), also
    # when a promoted replica syncs the others; a primary stopped at the end does not wait up to 10 s
    # for replicas stopped with it.
    common = [
        "--bind", LOOPBACK,
        "--save", "",
        "--appendonly", "yes",
        "--maxmemory-policy", "noeviction",
        "--repl-diskless-sync-delay", "0",
        "--shutdown-on-sigterm", "now",
    ]  # fmt: skip
    servers = [("primary", primary_port, ["--appendfsync", "always", *primary_settings])]
    servers += [
        (f"replica-{n}", port, ["--appendfsync", replica_fsync, "--replicaof", LOOPBACK, str(primary_port)])
        for n, port in enumerate(replica_ports)
    ]
    children: list[Child] = []
    try:
        for name, port, extra in servers:
            (directory / name).mkdir()
            argv = ["redis-server", "--port", str(port), "--dir", str(directory / name), *common, *extra]
            children.append(start(name, argv, os.environ, directory / f"{name}.log"))
        for n, port in enumerate(sentinel_ports):
            conf = directory / f"sentinel-{n}.conf"  # Sentinel rewrites its file as it learns
            # The replicas are named up front: a Sentinel would learn them from the primary's INFO,
            # which it reads every 10 s.
            known = "".join(
                f"sentinel known-replica {SENTINEL_PRIMARY_NAME} {LOOPBACK} {replica}\n"
                for replica in replica_ports
            )
            conf.write_text(
                f"port {port}\nbind {LOOPBACK}\ndir {directory}\n"
                f"sentinel monitor {SENTINEL_PRIMARY_NAME} {LOOPBACK} {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_PRIMARY_NAME} {down_after_ms}\n"
                f"sentinel failover-timeout {SENTINEL_PRIMARY_NAME} 10000\n{known}"
            )
            argv = ["redis-server", str(conf), "--sentinel"]
            children.append(start(f"sentinel-{n}", argv, os.environ, conf.with_suffix(".log")))
        group = ReplicatedRedis(
            children[0], children[1 : 1 + replicas], primary_port, replica_ports, sentinel_ports
        )
        wait_until(group.replicating, 30, "the replicas linked to the primary, and known to every Sentinel")
        yield group
    finally:
        stop_all(children, grace_seconds=5)


# PostgreSQL


class PostgresServer:
    """A private PostgreSQL cluster (initdb as the postgres user, trust auth) to restart at will.

    settings: extra `-c name=value` server settings, e.g. track_commit_timestamp.
    """

    def __init__(self, directory: Path, settings: Mapping[str, str] | None = None) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries or os.geteuid() != 0 or shutil.which("runuser") is None:
            raise Unavailable(
                "a private PostgreSQL needs the server binaries and root (to run initdb as postgres)"
            )
        self.bin = Path(binaries[-1])
        self.directory = directory
        self.port = free_port()
        self.settings = {"listen_addresses": LOOPBACK, "fsync": "on", **(settings or {})}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def init(self) -> None:
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres"
        )

    def ctl(self, action: str, *extra: str) -> None:
        """pg_ctl start, stop or restart, waiting for it to finish (30 s at most)."""
        options = " ".join([f"-p {self.port}", f"-k {self.directory}", *self._settings()])
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            action,
            "-D", str(self.directory / "data"),
            "-w",
            "-t", "30",
            "-o", options,
            "-l", str(self.directory / "log"),
            *extra,
        )  # fmt: skip

    def _settings(self) -> list[str]:
        return [f"-c {name}={value}" for name, value in self.settings.items()]


@contextlib.contextmanager
def postgres_server(settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
    """A started private cluster, stopped (immediate) and deleted at the end."""
    directory = Path(tempfile.mkdtemp(prefix="wahooks-pg-"))
    try:
        server = PostgresServer(directory, settings)
        server.init()
        server.ctl("start")
        try:
            yield server
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str = "wahooks_tmp") -> Iterator[str]:
    """CREATE a fresh database on admin_url's server, yield its URL, DROP it (WITH FORCE) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(admin_url: str, sql: str) -> None:
    try:
        connection = psycopg2.connect(admin_url, connect_timeout=3)
    except psycopg2.OperationalError as error:
        raise Unavailable(f"PostgreSQL is not reachable at {admin_url}: {error}") from None
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()
