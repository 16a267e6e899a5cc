"""Shared by the benchmarks: their environment, entry point and reports; a private Redis and a throwaway
database. Processes, servers and the Procfile come from the repository's throwaway.py (shared with
tests/), which is why the repository root goes on sys.path here."""

import compileall
import contextlib
import functools
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
POSTGRES_ADMIN_DSN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# A script in bench/ has bench/ on sys.path, not the root where throwaway.py lives.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import throwaway  # noqa: E402
from meta_payloads import CATALOG_ID, PHONE_NUMBER_ID  # noqa: E402
from throwaway import (  # noqa: E402
    LOOPBACK,
    Child,
    NotReady,
    PostgresServer,
    Unavailable,
    expand,
    free_port,
    postgres_server,
    redis_server,
    running,
    start,
    start_many,
    wait_until,
)

__all__ = [
    "BENCH_DIR",
    "LOOPBACK",
    "POSTGRES_ADMIN_DSN",
    "ROOT",
    "VENV_BIN",
    "BenchError",
    "Child",
    "PostgresServer",
    "base_env",
    "entry_point",
    "expand",
    "free_port",
    "load_average",
    "log_directory",
    "median",
    "postgres_server",
    "prepare_database",
    "private_redis",
    "procfile_command",
    "running",
    "start",
    "start_many",
    "table",
    "throwaway_database",
    "venv_executable",
    "verdict",
    "wahooks",
    "wait_until",
]


class BenchError(Exception):
    """The benchmark cannot go on, or its result is wrong; the message says which and why."""


def procfile_command(process_type: str, env: Mapping[str, str]) -> list[str]:
    """The Procfile line for a process type, variables expanded as a shell would, split into arguments."""
    try:
        return throwaway.procfile_command(process_type, env)
    except LookupError as error:
        raise BenchError(str(error)) from None


def venv_executable(argv: list[str], bin_dir: Path = VENV_BIN) -> list[str]:
    """Run the command's program from a virtualenv when it is installed there (gunicorn, wahooks, rq)."""
    local = bin_dir / argv[0]
    return [str(local), *argv[1:]] if local.exists() else argv


def entry_point(main: Callable[[], int], name: str) -> None:
    """Run a benchmark's main(); a BenchError (or a server that is missing or never ready) ends it with
    its message and exit status 1."""
    try:
        sys.exit(main())
    except (BenchError, Unavailable, NotReady) as error:
        print(f"{name}: {error}", file=sys.stderr)
        sys.exit(1)


def base_env(**extra: str) -> dict[str, str]:
    """The environment for children: ours, minus settings that would change what is measured.

    Children import the product from this checkout's root ahead of the editable install, so a
    benchmark run from an exported commit (git archive) measures that commit."""
    compile_checkout()
    env = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_CMD_ARGS", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), str(ROOT)])
    env.update(extra)
    return env


@functools.cache
def compile_checkout() -> None:
    """Compile the checkout's modules to bytecode once, as pip does for an installed wheel.

    Otherwise, where PYTHONDONTWRITEBYTECODE is set (this machine sets it), every child would compile
    every module it imports at every start: 60 ms a worker start that no installed worker pays, and that
    the baselines, imported from site-packages, do not pay either.
    """
    for package in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        compileall.compile_dir(package, quiet=1)


@contextlib.contextmanager
def private_redis(workdir: Path, durable: bool = False) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, yielding its URL; without persistence unless
    durable (an append-only file fsynced at every write, as production runs it).

    Nothing another engineer runs is touched or flushed."""
    with redis_server(workdir, durable) as server:
        yield server.url


@contextlib.contextmanager
def throwaway_database(admin_url: str = POSTGRES_ADMIN_DSN) -> Iterator[str]:
    """A fresh database on admin_url's server (BENCH_POSTGRES_URL's by default), dropped (WITH FORCE) at
    the end; yields its URL."""
    with throwaway.throwaway_database(admin_url, prefix="wahooks_bench") as url:
        yield url


def wahooks(env: dict[str, str], *args: str) -> None:
    """Run one `wahooks` command; BenchError with its output when it fails."""
    done = subprocess.run(
        [*venv_executable(["wahooks"]), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"wahooks {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def prepare_database(database_url: str) -> None:
    """Migrate, add tenant A and import its catalog, with the operator's own commands."""
    env = base_env(DATABASE_URL=database_url)
    wahooks(env, "migrate")
    wahooks(env, "tenants", "add", "--name", "Acme", "--phone-number-id", PHONE_NUMBER_ID)
    wahooks(
        env,
        "catalog", "import",
        "--phone-number-id", PHONE_NUMBER_ID,
        "--catalog-id", CATALOG_ID,
        str(ROOT / "tests" / "fixtures" / "catalog_a.csv"),
    )  # fmt: skip


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
