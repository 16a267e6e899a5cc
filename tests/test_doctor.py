"""`wahooks doctor` against real servers: each thing an operator can get wrong gives its warn or FAIL,
with what to do, and the exit status a script can act on."""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from sqlalchemy.engine import make_url

from cli.doctor import FAIL, OK, WARN, Result, diagnose
from cli.main import main
from runtime.inbox import JOB_PATH, WAITING_TTL_SECONDS, Inbox, InboxKeys, body_digest
from tests import services
from tests.processes import Workers, free_port, redis_server, wait_until
from throwaway import RedisServer
from workers.pump import Pump

Env = dict[str, str]
DURABLE = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}
REDIS_CHECKS = ("redis persistence", "redis eviction", "workers", "failed jobs", "lag")
# What the doctor reads; the shell that runs the tests must not leak any in.
VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "WAHOOKS_QUEUE",
    "WAHOOKS_BATCH_MAX_BODIES",
    "WEBHOOK_MAX_BODY_BYTES",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
)
Doctor = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of our own, whose settings a test may change."""
    with redis_server() as server:
        yield server


@pytest.fixture
def client(private_redis: RedisServer) -> Iterator[redis.Redis]:
    """The private Redis, empty and durable as the README requires; restored so after the test."""
    connection = redis.Redis.from_url(private_redis.url)
    connection.flushall()
    yield connection
    connection.config_set("requirepass", "")
    for name, value in DURABLE.items():
        connection.config_set(name, value)
    connection.flushall()
    connection.close()


@pytest.fixture
def env(postgres_url: str, private_redis: RedisServer, client: redis.Redis) -> Env:
    """Every variable set, a migrated database, a durable Redis: all that is missing is a worker."""
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": private_redis.url,
        "WAHOOKS_QUEUE": f"doctor-{uuid.uuid4().hex[:8]}",
        "WHATSAPP_APP_SECRET": "doctor-app-secret",
        "WHATSAPP_VERIFY_TOKEN": "doctor-verify-token",
    }


@pytest.fixture
def queue(env: Env, client: redis.Redis) -> Queue:
    return Queue(env["WAHOOKS_QUEUE"], connection=client)


@pytest.fixture
def worker(queue: Queue) -> Iterator[SimpleWorker]:
    """A worker registered in RQ for the queue, as a running `wahooks worker` is."""
    registered = SimpleWorker([queue], connection=queue.connection)
    registered.register_birth()
    yield registered
    registered.register_death()


@pytest.fixture
def healthy(env: Env, worker: SimpleWorker) -> Env:
    return env


def checks(env: Env) -> dict[str, Result]:
    return {result.check: result for result in diagnose(env)}


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Doctor]:
    """`wahooks doctor ARGS` as an operator runs it, in exactly the environment given."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(env: Env, *args: str) -> tuple[int, str]:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main(["doctor", *args])
        return code, capsys.readouterr().out

    yield run
    # main() points the root logger at the current stderr; put it back.
    root.handlers[:] = handlers
    root.setLevel(level)


# All is well


def test_all_ok_with_a_running_worker_process(env: Env, queue: Queue, doctor: Doctor) -> None:
    workers = Workers(env)
    try:
        workers.start()
        wait_until(lambda: bool(Worker.all(queue=queue)), 30, "the worker registering in RQ")
        code, out = doctor(env)
    finally:
        workers.stop_all()
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [OK] * 8
    assert [line.split(":")[0].split(maxsplit=1)[1] for line in lines] == [
        "configuration", "database", "redis", *REDIS_CHECKS
    ]  # fmt: skip


def test_json_gives_each_check_its_status_and_message(healthy: Env, doctor: Doctor) -> None:
    healthy_code, healthy_out = doctor(healthy, "--json")
    broken_code, broken_out = doctor({**healthy, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "--json")
    report, broken = json.loads(healthy_out), json.loads(broken_out)
    assert (healthy_code, report["status"]) == (0, OK)
    assert [set(check) for check in report["checks"]] == [{"check", "status", "message"}] * 8
    assert (broken_code, broken["status"]) == (1, FAIL)
    assert {c["check"]: c["status"] for c in broken["checks"]} == {
        "configuration": OK, "database": OK, "redis": FAIL
    }  # fmt: skip


# PostgreSQL


@pytest.fixture
def empty_database() -> Iterator[str]:
    url = services.create_postgres_database()
    try:
        yield url
    finally:
        services.drop_postgres_database(url)


def test_a_database_behind_the_migrations_fails_naming_wahooks_migrate(
    healthy: Env, empty_database: str
) -> None:
    database = checks({**healthy, "DATABASE_URL": empty_database})["database"]
    assert database.status == FAIL
    assert "run `wahooks migrate`" in database.message


def test_an_unreachable_database_fails_within_seconds(healthy: Env) -> None:
    started = time.monotonic()
    database = checks({**healthy, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x"})[
        "database"
    ]
    assert time.monotonic() - started < 10
    assert database.status == FAIL
    assert database.message.startswith("cannot reach postgresql+psycopg2://127.0.0.1:")
    assert database.message.endswith("start the database or fix DATABASE_URL")


# Redis


def test_an_unreachable_redis_fails_and_skips_what_needs_it(healthy: Env) -> None:
    started = time.monotonic()
    found = checks({**healthy, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert time.monotonic() - started < 10
    assert list(found) == ["configuration", "database", "redis"]
    assert found["redis"].status == FAIL
    assert "Connection refused: start Redis or fix REDIS_URL" in found["redis"].message


@pytest.mark.parametrize(
    ("setting", "value", "check", "status", "fix"),
    [
        ("appendonly", "no", "redis persistence", FAIL, "`CONFIG SET appendonly yes`"),
        ("appendfsync", "everysec", "redis persistence", WARN, "`CONFIG SET appendfsync always`"),
        ("appendfsync", "no", "redis persistence", WARN, "`CONFIG SET appendfsync always`"),
        (
            "maxmemory-policy",
            "allkeys-lru",
            "redis eviction",
            FAIL,
            "`CONFIG SET maxmemory-policy noeviction`",
        ),
        (
            "maxmemory-policy",
            "volatile-ttl",
            "redis eviction",
            FAIL,
            "`CONFIG SET maxmemory-policy noeviction`",
        ),
    ],
)
def test_redis_settings_the_readme_requires(
    healthy: Env, client: redis.Redis, setting: str, value: str, check: str, status: str, fix: str
) -> None:
    client.config_set(setting, value)
    found = checks(healthy)
    assert {name: r.status for name, r in found.items() if r.status != OK} == {check: status}
    assert f"{setting} is {value}" in found[check].message
    assert fix in found[check].message


@pytest.fixture
def config_refused(healthy: Env, private_redis: RedisServer, client: redis.Redis) -> Iterator[Env]:
    """REDIS_URL as a user that may do everything but CONFIG, as on some hosted Redis services."""
    client.acl_setuser("operator", enabled=True, passwords=["+operator-pw"], keys=["*"], channels=["*"],
                       commands=["+@all", "-config"])  # fmt: skip
    yield {**healthy, "REDIS_URL": f"redis://operator:operator-pw@127.0.0.1:{private_redis.port}/0"}
    client.acl_deluser("operator")


def test_a_redis_that_refuses_config_warns_with_the_settings_to_check(config_refused: Env) -> None:
    found = checks(config_refused)
    assert {name: r.status for name, r in found.items() if r.status != OK} == {
        "redis persistence": WARN, "redis eviction": WARN
    }  # fmt: skip
    assert found["redis eviction"].message == (
        "cannot read Redis's settings (CONFIG GET refused): make sure it runs with appendonly yes,"
        " appendfsync always and maxmemory-policy noeviction"
    )


# Workers, failed jobs, lag


def test_no_worker_fails_naming_the_command_that_starts_one(env: Env) -> None:
    workers = checks(env)["workers"]
    assert workers.status == FAIL
    assert "start `wahooks worker`" in workers.message


def test_a_failed_job_warns_naming_wahooks_failed(healthy: Env, queue: Queue) -> None:
    job = Job.create(JOB_PATH, args=([b"{}"],), connection=queue.connection)
    job.save()
    queue.failed_job_registry.add(job, exc_string="Traceback ...\nValueError: boom")
    failed = checks(healthy)["failed jobs"]
    assert failed.status == WARN
    assert failed.message.startswith("1 jobs in the failed registry: see their errors with `wahooks failed`")


def pushed_ago(queue: Queue, body: bytes, seconds: float) -> None:
    """Push a body as the web side does, and age it: its waiting marker shows when it was pushed."""
    assert Inbox(queue.connection, queue.name).push(body)
    remaining_ms = int((WAITING_TTL_SECONDS - seconds) * 1000)
    queue.connection.pexpire(InboxKeys(queue.name).waiting(body_digest(body)), remaining_ms)


@pytest.mark.parametrize("as_job", [False, True], ids=["in the inbox", "in a queued job"])
@pytest.mark.parametrize(("waited", "status"), [(0, OK), (30, WARN), (300, FAIL)])
def test_lag_is_how_long_the_oldest_waiting_body_has_waited(
    healthy: Env, queue: Queue, as_job: bool, waited: float, status: str
) -> None:
    pushed_ago(queue, b'{"oldest": true}', waited)
    pushed_ago(queue, b'{"newest": true}', 0)
    if as_job:
        Pump(queue.connection, queue).drain()
    lag = checks(healthy)["lag"]
    assert lag.status == status
    assert f"the oldest waiting body was pushed {waited:.0f}." in lag.message
    assert ("inbox: 0 bodies, queue: 1 jobs" if as_job else "inbox: 2 bodies, queue: 0 jobs") in lag.message
    if status != OK:
        assert lag.message.endswith("start more `wahooks worker` processes, or see their logs for why")


def test_nothing_waiting_is_no_lag(healthy: Env) -> None:
    assert checks(healthy)["lag"] == Result(
        "lag", OK, "nothing waits for a worker (inbox: 0 bodies, queue: 0 jobs)"
    )


# Configuration, secrets, exit status


@pytest.mark.parametrize(
    "variable", ["DATABASE_URL", "REDIS_URL", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"]
)
def test_a_missing_variable_fails_naming_it(healthy: Env, doctor: Doctor, variable: str) -> None:
    code, out = doctor({k: v for k, v in healthy.items() if k != variable})
    assert code == 1
    assert out.splitlines()[0].startswith(f"FAIL  configuration: {variable} is not set: ")


def test_a_malformed_variable_fails_naming_it(healthy: Env) -> None:
    configuration = checks({**healthy, "WAHOOKS_BATCH_MAX_BODIES": "many"})["configuration"]
    assert configuration == Result("configuration", FAIL, "WAHOOKS_BATCH_MAX_BODIES must be a whole number")


@pytest.mark.parametrize(
    ("strict", "code"), [((), 0), (("--strict",), 1)], ids=["warnings pass", "--strict fails them"]
)
def test_warnings_alone_exit_0_unless_strict(
    healthy: Env, client: redis.Redis, doctor: Doctor, strict: tuple[str, ...], code: int
) -> None:
    client.config_set("appendfsync", "everysec")
    status, out = doctor(healthy, *strict)
    assert [line.split()[0] for line in out.splitlines()].count(WARN) == 1
    assert FAIL not in out
    assert status == code


PASSWORD = "pass-4242"


@pytest.mark.parametrize(
    ("variable", "url", "requirepass", "shown"),
    [
        ("DATABASE_URL", "{database}", None, "ok    database: "),
        ("REDIS_URL", "redis://default:{password}@127.0.0.1:{closed}/0", None, "FAIL  redis: "),
        ("REDIS_URL", "redis://:{password}@{private}/0", PASSWORD, "ok    lag: "),
        ("REDIS_URL", "redis://:{password}@{private}/0", "another-password", "FAIL  redis: "),
    ],
    ids=["database answering", "redis unreachable", "redis answering", "redis refusing the password"],
)
def test_no_password_is_ever_shown(
    healthy: Env,
    private_redis: RedisServer,
    client: redis.Redis,
    doctor: Doctor,
    variable: str,
    url: str,
    requirepass: str | None,
    shown: str,
) -> None:
    """In the URLs as written and as a query parameter, whether the server answers, refuses or is gone."""
    database = make_url(healthy["DATABASE_URL"]).set(password=PASSWORD, query={"password": PASSWORD})
    url = url.format(
        database=database.render_as_string(hide_password=False),
        password=PASSWORD,
        closed=free_port(),
        private=f"127.0.0.1:{private_redis.port}",
    )
    if requirepass:
        client.config_set("requirepass", requirepass)  # this connection stays authenticated
    outputs = [doctor({**healthy, variable: url}, *args)[1] for args in ((), ("--json",))]
    assert shown in outputs[0]
    assert all(PASSWORD not in out for out in outputs), outputs
