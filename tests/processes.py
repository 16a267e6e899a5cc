"""Real processes for fault tests: worker processes, and private Redis and PostgreSQL servers to restart.

The servers and children themselves come from the repository's throwaway.py, which the benchmarks
share; here a missing server program becomes a skip (a failure under WAHOOKS_REQUIRE_SERVICES=1).
"""

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import skip_or_fail
from throwaway import (
    PROJECT_ROOT,
    Child,
    PostgresServer,
    RedisServer,
    Unavailable,
    free_port,
    start,
    stop_all,
    wait_until,
)
from throwaway import postgres_server as _postgres_server
from throwaway import redis_server as _redis_server

__all__ = ["PROJECT_ROOT", "Workers", "free_port", "postgres_server", "redis_server", "wait_until"]


class Workers:
    """`wahooks worker` processes, each in its own process group so a kill takes the whole process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "json", **env}
        self.children: list[Child] = []
        self.logs = Path(tempfile.mkdtemp(prefix="wahooks-workers-"))
        self._started = 0

    def start(self, count: int = 1) -> list[Child]:
        started = []
        for _ in range(count):
            log = self.logs / f"worker-{self._started}.log"
            started.append(start(log.stem, [sys.executable, "-m", "cli.main", "worker"], self.env, log))
            self._started += 1
        self.children += started
        return started

    def errors(self) -> list[str]:
        """What any worker logged at error level, e.g. a job that raised."""
        lines = (line for log in sorted(self.logs.glob("*.log")) for line in log.read_text().splitlines())
        return [line for line in lines if '"level": "error"' in line]

    def kill(self, child: Child) -> None:
        child.kill()
        self.children.remove(child)

    def stop_all(self) -> None:
        stop_all(self.children, grace_seconds=15)
        shutil.rmtree(self.logs, ignore_errors=True)

    def assert_alive(self) -> None:
        exited = [c.process.returncode for c in self.children if not c.alive()]
        assert not exited, f"worker processes exited on their own: {exited}"


@contextmanager
def _or_skip() -> Iterator[None]:
    try:
        yield
    except Unavailable as missing:
        skip_or_fail(str(missing))


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server with an fsync-always append-only file: a restart keeps acknowledged writes."""
    with _or_skip(), _redis_server(durable=True) as server:
        yield server


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster that a test may restart at will."""
    with _or_skip(), _postgres_server() as server:
        yield server
