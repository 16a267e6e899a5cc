"""Real processes for fault tests: worker processes, and private Redis and PostgreSQL servers to restart."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.services import REQUIRED

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll until condition() holds; return the seconds it took, or fail naming what never happened."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} [WAHOOKS_REQUIRE_SERVICES=1 makes this a failure]", pytrace=False)
    pytest.skip(what)


class Workers:
    """`wahooks worker` processes, each in its own process group so a kill takes the whole process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json", **env}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="wahooks-workers-"))

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            with (self.logs / f"worker-{len(self.processes) + len(started)}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "cli.main", "worker"],
                        cwd=PROJECT_ROOT,
                        env=self.env,
                        start_new_session=True,
                        stdout=subprocess.DEVNULL,
                        stderr=log,
                    )
                )
        self.processes += started
        return started

    def errors(self) -> list[str]:
        """What any worker logged at error level, e.g. a job that raised."""
        lines = (line for log in sorted(self.logs.glob("*.log")) for line in log.read_text().splitlines())
        return [line for line in lines if '"level": "error"' in line]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.processes.remove(process)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.logs, ignore_errors=True)

    def assert_alive(self) -> None:
        exited = [p.returncode for p in self.processes if p.poll() is not None]
        assert not exited, f"worker processes exited on their own: {exited}"


class RedisServer:
    """A private redis-server with an fsync-always append-only file: a restart keeps acknowledged writes."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._answers, 10, "redis-server start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="wahooks-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            if server.process and server.process.poll() is None:
                server.kill()


class PostgresServer:
    """A private PostgreSQL cluster (initdb as the postgres user) that a test may restart at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not binaries or os.geteuid() != 0 or shutil.which("runuser") is None:
            _missing("a private PostgreSQL needs the server binaries and root (to run initdb as postgres)")
        self.bin = Path(binaries[-1])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def init(self) -> None:
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres"
        )

    def ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            action,
            "-D",
            str(self.directory / "data"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            *extra,
        )


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    directory = Path(tempfile.mkdtemp(prefix="wahooks-pg-"))
    server = PostgresServer(directory)
    try:
        server.init()
        server.ctl("start")
        yield server
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(server.bin / "pg_ctl"),
                "stop",
                "-D",
                str(directory / "data"),
                "-m",
                "immediate",
            ],
            capture_output=True,
        )
        shutil.rmtree(directory, ignore_errors=True)
