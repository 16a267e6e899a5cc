"""`wahooks doctor`: check the configuration, PostgreSQL, Redis, the workers, failed jobs and lag.

Every check gives one result: ok, warn or FAIL, and for warn and FAIL a sentence that ends with what to do.
Each is bounded: the database connects within 5 s (models/db.py's connect timeout) and Redis answers
within the web side's 0.5 s, so a dead server is a FAIL within seconds, never a hang. Checks that need a
server that does not answer are not run (its own FAIL says so). No result shows a password: servers are
named by scheme, host and path alone.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError, ResponseError
from rq import Queue, Worker
from sqlalchemy.exc import ArgumentError, DBAPIError

from models.db import Database, SchemaOutOfDate
from runtime.config import ConfigError, WebConfig, WorkerConfig, database_url, queue_name, redis_url
from runtime.inbox import Inbox
from runtime.redis_client import web_client

OK, WARN, FAIL = "ok", "warn", "FAIL"
# At low load a body is committed within tens of milliseconds of its POST, and under the benchmarks'
# full load within about half a second (p99): a body waiting 5 s means the workers fall behind, one
# waiting a minute that they are not draining the inbox at all.
LAG_WARN_SECONDS = 5.0
LAG_FAIL_SECONDS = 60.0
REDIS_SETTINGS_FIX = (
    "make sure it runs with appendonly yes, appendfsync always and maxmemory-policy noeviction"
)


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    message: str


def diagnose(env: Mapping[str, str]) -> list[Result]:
    """Every check, in the order an operator would fix them."""
    return [check_configuration(env), check_database(env), *check_redis(env)]


def exit_status(results: list[Result], strict: bool = False) -> int:
    """1 when a check FAILs (or, with strict, warns), else 0."""
    failing = {FAIL, WARN} if strict else {FAIL}
    return 1 if any(r.status in failing for r in results) else 0


def as_text(results: list[Result]) -> str:
    return "\n".join(f"{r.status:<4}  {r.check}: {r.message}" for r in results)


def as_json(results: list[Result]) -> str:
    worst = next((s for s in (FAIL, WARN) if any(r.status == s for r in results)), OK)
    return json.dumps({"status": worst, "checks": [asdict(r) for r in results]}, indent=2)


def server_name(url: str) -> str:
    """A server URL without its user, password or query (redis-py and libpq accept a password there too)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _first_line(text: str) -> str:
    """A driver's error as one clause of a sentence: its first line, without a closing full stop."""
    return (text.strip().splitlines() or [""])[0].rstrip(".")


# Configuration


def check_configuration(env: Mapping[str, str]) -> Result:
    """Both sides' variables, as `wahooks worker` and the web process read them at start-up."""
    problems: list[str] = []
    for config in (WorkerConfig, WebConfig):
        try:
            config.from_env(env)
        except ConfigError as error:
            if str(error) not in problems:
                problems.append(str(error))
    if problems:
        return Result("configuration", FAIL, "; ".join(problems))
    return Result("configuration", OK, f"the worker and web variables are set (queue {queue_name(env)!r})")


# PostgreSQL


def check_database(env: Mapping[str, str]) -> Result:
    """The database answers and is at the latest migration (the schema check the workers run)."""
    try:
        url = database_url(env)
    except ConfigError as error:
        return Result("database", FAIL, f"not checked: {error}")
    where = server_name(url)
    try:
        db = Database(url)
    except ArgumentError:  # its text quotes the whole URL, password included
        return Result("database", FAIL, "DATABASE_URL is not a valid URL: fix it")
    try:
        db.check_schema()
    except SchemaOutOfDate as error:
        return Result("database", FAIL, str(error))
    except DBAPIError as error:
        reason = _first_line(str(error.orig)) if error.orig else type(error).__name__
        return Result(
            "database", FAIL, f"cannot reach {where}: {reason}: start the database or fix DATABASE_URL"
        )
    finally:
        db.dispose()
    return Result("database", OK, f"{where} answers and is at the latest migration")


# Redis, and what it tells of the workers


def check_redis(env: Mapping[str, str]) -> list[Result]:
    """Redis answers; then its settings, the workers, the failed registry and lag, read from it."""
    try:
        url = redis_url(env)
    except ConfigError as error:
        return [Result("redis", FAIL, f"not checked: {error}")]
    client = web_client(url)
    try:
        return _redis_results(Queue(queue_name(env), connection=client), server_name(url))
    finally:
        client.close()


def _redis_results(queue: Queue, where: str) -> list[Result]:
    try:
        version = queue.connection.info("server")["redis_version"]
    except RedisError as error:
        return [
            Result(
                "redis",
                FAIL,
                f"cannot reach {where}: {_first_line(str(error))}: start Redis or fix REDIS_URL"
                " (the checks of its settings, the workers, failed jobs and lag need it)",
            )
        ]
    return [
        Result("redis", OK, f"{where} answers (Redis {version})"),
        *(_guarded(name, check, queue) for name, check in REDIS_CHECKS),
    ]


def _guarded(name: str, check: Callable[[Queue], tuple[str, str]], queue: Queue) -> Result:
    """One check's result; FAIL if Redis stops answering in the middle of the run."""
    try:
        status, message = check(queue)
    except RedisError as error:
        reason = _first_line(str(error))
        return Result(name, FAIL, f"Redis stopped answering: {reason}: start Redis or fix REDIS_URL")
    return Result(name, status, message)


@dataclass(frozen=True)
class Setting:
    """A Redis setting the README requires, and what goes wrong without it."""

    name: str
    wanted: str
    otherwise: str  # FAIL or WARN
    risk: str


PERSISTENCE = (
    Setting(
        "appendonly", "yes", FAIL, "a Redis restart loses every body acknowledged to Meta and not yet stored"
    ),
    Setting("appendfsync", "always", WARN, "a crash may lose acknowledged bodies not yet written to disk"),
)
EVICTION = (
    Setting("maxmemory-policy", "noeviction", FAIL, "a full Redis evicts bodies acknowledged to Meta"),
)


def _check_settings(queue: Queue, required: tuple[Setting, ...]) -> tuple[str, str]:
    """Each required setting as Redis reports it; what differs, with the CONFIG SET line that fixes it."""
    try:
        found = {s.name: str(queue.connection.config_get(s.name).get(s.name)) for s in required}
    except ResponseError:  # CONFIG refused, as some hosted Redis services do
        return WARN, f"cannot read Redis's settings (CONFIG GET refused): {REDIS_SETTINGS_FIX}"
    unmet = [s for s in required if found[s.name] != s.wanted]
    if not unmet:
        return OK, ", ".join(f"{s.name} {s.wanted}" for s in required)
    status = FAIL if any(s.otherwise == FAIL for s in unmet) else WARN
    fixes = "; ".join(
        f"{s.name} is {found[s.name]}: {s.risk}; run `CONFIG SET {s.name} {s.wanted}`" for s in unmet
    )
    return status, f"{fixes}; and set the same in redis.conf"


def check_persistence(queue: Queue) -> tuple[str, str]:
    """An append-only file, fsynced at every write: a restart keeps every body acknowledged to Meta."""
    return _check_settings(queue, PERSISTENCE)


def check_eviction(queue: Queue) -> tuple[str, str]:
    """noeviction: a full Redis refuses new bodies (Meta redelivers) rather than dropping waiting ones."""
    return _check_settings(queue, EVICTION)


def check_workers(queue: Queue) -> tuple[str, str]:
    """Workers registered for the queue, as RQ lists them.

    A worker that exits removes itself; one killed outright stays listed until its registration expires
    (RQ's worker TTL, 420 s), so this catches no workers at all, not one that died a minute ago.
    """
    workers = Worker.all(queue=queue)
    if not workers:
        return FAIL, (
            f"no worker is registered for queue {queue.name!r}, so nothing is processed:"
            " start `wahooks worker` (the Procfile's worker: line) with the same REDIS_URL and WAHOOKS_QUEUE"
        )
    return OK, f"{len(workers)} workers registered for queue {queue.name!r}"


def check_failed(queue: Queue) -> tuple[str, str]:
    failed = queue.failed_job_registry.count
    if failed:
        return WARN, (
            f"{failed} jobs in the failed registry: see their errors with `wahooks failed`, and once the"
            " cause is fixed put them back with `wahooks requeue-failed`"
        )
    return OK, "the failed registry is empty"


def oldest_wait_seconds(queue: Queue) -> float | None:
    """How long the oldest body still waiting for a worker has waited since the web side pushed it; None
    when nothing waits.

    The oldest waiting body is the first of the oldest job in the queue (the pump takes the oldest bodies
    first), else the inbox's tail. Its push time is read from its waiting marker (runtime/inbox.py), set
    with a lifetime of WAITING_TTL_SECONDS when the body was pushed and deleted once it is processed.
    """
    inbox = Inbox(queue.connection, queue.name)
    oldest = _oldest_waiting_body(queue, inbox)
    return None if oldest is None else inbox.waited_seconds(oldest)


def check_lag(queue: Queue) -> tuple[str, str]:
    """The oldest waiting body's wait (oldest_wait_seconds) against the thresholds."""
    waiting = f"inbox: {Inbox(queue.connection, queue.name).depth()} bodies, queue: {queue.count} jobs"
    age = oldest_wait_seconds(queue)
    if age is None:
        return OK, f"nothing waits for a worker ({waiting})"
    message = f"the oldest waiting body was pushed {age:.1f} s ago ({waiting})"
    if age < LAG_WARN_SECONDS:
        return OK, message
    fix = "the workers are falling behind: start more `wahooks worker` processes, or see their logs for why"
    return (FAIL if age >= LAG_FAIL_SECONDS else WARN), f"{message}: {fix}"


def _oldest_waiting_body(queue: Queue, inbox: Inbox) -> bytes | None:
    jobs = queue.get_jobs(0, 1)
    if jobs and jobs[0].args and jobs[0].args[0]:
        first: bytes = jobs[0].args[0][0]
        return first
    return inbox.oldest()


REDIS_CHECKS: tuple[tuple[str, Callable[[Queue], tuple[str, str]]], ...] = (
    ("redis persistence", check_persistence),
    ("redis eviction", check_eviction),
    ("workers", check_workers),
    ("failed jobs", check_failed),
    ("lag", check_lag),
)
