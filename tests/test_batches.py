"""Many bodies in one transaction: exact whatever shares a batch, and one poison body never costs the rest."""

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import fakeredis
import pytest
import redis
import redis.exceptions as redis_errors
from rq import Queue
from rq.job import Job
from sqlalchemy import event, func, select, text

from models import WebhookEvent, WhatsAppMessage
from runtime.inbox import Inbox, InboxKeys, body_digest
from tests import generate, tables
from tests.conftest import (
    PAYLOADS,
    TENANT_A,
    Backend,
    Pipeline,
    empty_tables,
    load_expected,
    make_pipeline,
    seed,
)
from workers.jobs import job_data
from workers.pump import Pump
from workers.runner import LeasedWorker
from workers.tenants import TenantDirectory

POISON_WAMID = "wamid.POISON"
DAY = datetime.fromtimestamp(generate.BASE_TIMESTAMP, UTC).date().isoformat()


@pytest.fixture
def statements(backend: Backend) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:  # conn, cursor, statement, parameters, context, executemany
        sent.append(args[2])

    event.listen(backend.db.engine, "before_cursor_execute", record)
    yield sent
    event.remove(backend.db.engine, "before_cursor_execute", record)


def _single_messages(count: int) -> list[bytes]:
    return generate.bodies(count, messages_per_body=1, statuses_per_body=0).bodies


def test_a_batch_of_bodies_costs_a_few_statements_not_a_few_per_body(
    pipeline: Pipeline, statements: list[str]
) -> None:
    bodies = _single_messages(50)
    pipeline.deliver(*bodies)
    statements.clear()
    pipeline.drain()
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    # The customers, the messages, the day's analytics, the raw bodies: one statement each for all 50 bodies.
    assert len(writes) == 4, writes
    assert len(tables.messages(pipeline.services.db)) == 50


@pytest.mark.parametrize("name", sorted(p.name for p in (PAYLOADS / "sequences").iterdir()))
def test_a_sequence_delivered_in_one_batch_counts_once_in_every_order(pipeline: Pipeline, name: str) -> None:
    bodies = [p.read_bytes() for p in sorted((PAYLOADS / "sequences" / name).glob("*.json"))]
    expected = load_expected(f"sequences/{name}.json")
    for order in itertools.permutations(bodies):
        empty_tables(pipeline.services.db)
        seed(pipeline.services.db)
        pipeline.replay(*order, *order)  # every body twice, all in one job
        tables.assert_state(pipeline.services.db, expected)


@pytest.fixture
def poisoned(postgres_backend: Backend) -> Iterator[Backend]:
    """A database that refuses one wamid, as it would refuse any value it cannot store."""
    with postgres_backend.db.session() as session:
        session.execute(
            text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF NEW.wamid = '{POISON_WAMID}' THEN RAISE EXCEPTION 'poison body'; END IF;"
                " RETURN NEW; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON whatsapp_messages"
                " FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            )
        )
    try:
        yield postgres_backend
    finally:
        with postgres_backend.db.session() as session:
            session.execute(text("DROP TRIGGER refuse_poison ON whatsapp_messages"))
            session.execute(text("DROP FUNCTION refuse_poison()"))


def test_a_poison_body_in_a_batch_of_100_fails_alone(poisoned: Backend) -> None:
    seed(poisoned.db)
    pipeline = make_pipeline(poisoned)
    good = _single_messages(99)
    poison = (
        (PAYLOADS / "text_reply.json").read_bytes().replace(b"wamid.HBgLTEXT-REPLY-1", POISON_WAMID.encode())
    )
    queue = pipeline.services.queue
    queue.enqueue_many([job_data([*good[:50], poison, *good[50:]])])
    pipeline.drain()

    stored = tables.messages(poisoned.db)
    assert len(stored) == 99 and POISON_WAMID not in stored
    assert tables.analytics(poisoned.db) == {"A": {DAY: {"messages_received": 99}}}
    outcomes = tables.outcomes(poisoned.db)
    assert sorted(outcomes.values()) == ["failed"] + ["processed"] * 99
    with poisoned.db.session() as session:
        error = session.scalar(select(WebhookEvent.error).where(WebhookEvent.sha256 == body_digest(poison)))
    assert error is not None and "poison body" in error

    # The poison body alone waits for its retries, and ends in the failed registry when they run out.
    (job_id,) = queue.scheduled_job_registry.get_job_ids() + queue.get_job_ids()
    job = Job.fetch(job_id, connection=queue.connection)
    assert job.args == ([poison],)
    job.retries_left = 0
    job.save()
    if job_id in queue.scheduled_job_registry:
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)
    pipeline.drain()
    assert queue.failed_job_registry.get_job_ids() == [job_id]
    with poisoned.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WhatsAppMessage)) == 99


def test_the_default_tenant_once_created_is_remembered(backend: Backend, statements: list[str]) -> None:
    directory = TenantDirectory(TENANT_A.phone_number_id, "Solo")
    created = directory.resolve(backend.db, {TENANT_A.phone_number_id})
    statements.clear()
    assert directory.resolve(backend.db, {TENANT_A.phone_number_id}) == created
    assert statements == []


def _four_bodies_waiting(redis: fakeredis.FakeRedis) -> tuple[Queue, Inbox, InboxKeys]:
    queue, inbox = Queue("q", connection=redis), Inbox(redis, "q")
    for n in range(4):
        inbox.push(f'{{"n": {n}}}'.encode())
    return queue, inbox, InboxKeys("q")


class TestPump:
    @pytest.fixture
    def redis(self) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=fakeredis.FakeServer())

    def test_waits_while_a_job_is_waiting_then_takes_everything(self, redis: fakeredis.FakeRedis) -> None:
        queue = Queue("q", connection=redis)
        inbox, pump = Inbox(redis, "q"), Pump(redis, queue, max_bodies=100, linger_seconds=0)
        inbox.push(b'{"n": 0}')
        assert pump.move() == 1
        for n in range(1, 31):
            inbox.push(f'{{"n": {n}}}'.encode())
        assert pump.move() == 0  # a worker has not taken the first job yet: let the batch grow
        queue.pop_job_id()
        assert pump.move() == 30
        (job,) = [Job.fetch(j, connection=redis) for j in queue.get_job_ids()]
        assert job.args == ([f'{{"n": {n}}}'.encode() for n in range(1, 31)],)  # oldest first

    def test_bodies_wait_for_batch_mates_a_moment_unless_a_full_batch_waits(
        self, redis: fakeredis.FakeRedis
    ) -> None:
        queue = Queue("q", connection=redis)
        inbox, pump = Inbox(redis, "q"), Pump(redis, queue, max_bodies=5, linger_seconds=0.05)
        inbox.push(b'{"n": 0}')
        assert pump.move() == 0  # just seen: it may get batch mates
        time.sleep(0.06)
        assert pump.move() == 1
        queue.pop_job_id()
        inbox.push(b'{"n": 0.5}')
        assert pump.move(linger=False) == 1  # a worker done with a job takes what waits at once
        queue.pop_job_id()
        for n in range(1, 6):
            inbox.push(f'{{"n": {n}}}'.encode())
        assert pump.move() == 5  # a full batch goes at once

    def test_a_batch_stops_at_the_configured_maximum(self, redis: fakeredis.FakeRedis) -> None:
        queue = Queue("q", connection=redis)
        inbox, pump = Inbox(redis, "q"), Pump(redis, queue, max_bodies=7)
        for n in range(10):
            inbox.push(f'{{"n": {n}}}'.encode())
        assert pump.move() == 7
        assert inbox.depth() == 3

    @pytest.mark.parametrize(
        ("workers", "waiting", "taken"),
        [
            (1, 250, 100),  # alone: a full batch
            (2, 250, 100),  # a backlog of a full batch per worker and more
            (2, 150, 75),  # less: a worker takes its share, the other one the rest
            (4, 150, 38),
            (4, 30, 10),  # never fewer than a tenth of the maximum...
            (4, 6, 6),  # ...or all, when fewer wait
        ],
    )
    def test_a_worker_takes_its_share_of_a_backlog(
        self, redis: fakeredis.FakeRedis, workers: int, waiting: int, taken: int
    ) -> None:
        queue = Queue("q", connection=redis)
        for n in range(workers):
            LeasedWorker([queue], connection=redis, name=f"w{n}").register_birth()
        inbox, pump = Inbox(redis, "q"), Pump(redis, queue, max_bodies=100)
        inbox.push_many([f'{{"n": {n}}}'.encode() for n in range(waiting)])
        assert pump.move(linger=False) == taken
        (job,) = [Job.fetch(j, connection=redis) for j in queue.get_job_ids()]
        assert job.args == ([f'{{"n": {n}}}'.encode() for n in range(taken)],)  # the oldest
        assert inbox.depth() == waiting - taken

    def test_a_pump_that_read_before_another_moved_moves_nothing(self, redis: fakeredis.FakeRedis) -> None:
        queue = Queue("q", connection=redis)
        inbox, other = Inbox(redis, "q"), Pump(redis, queue, max_bodies=3)
        for n in range(5):
            inbox.push(f'{{"n": {n}}}'.encode())

        class Overtaken(Pump):
            def _oldest_bodies(self, *args: Any) -> list[bytes] | None:
                read = super()._oldest_bodies(*args)
                assert other.move(only_when_no_job_waits=False) == 3  # moves what this one just read
                return read

        assert Overtaken(redis, queue, max_bodies=3).move(only_when_no_job_waits=False) == 0
        (job,) = [Job.fetch(j, connection=redis) for j in queue.get_job_ids()]
        assert job.args == ([f'{{"n": {n}}}'.encode() for n in range(3)],)
        assert inbox.depth() == 2  # the two newest, neither enqueued nor lost

    def test_pushes_while_a_pump_moves_never_abort_it(self, redis: fakeredis.FakeRedis) -> None:
        queue = Queue("q", connection=redis)
        inbox = Inbox(redis, "q")
        inbox.push(b'{"n": 0}')

        class Pushed(Pump):
            def _oldest_bodies(self, *args: Any) -> list[bytes] | None:
                read = super()._oldest_bodies(*args)
                inbox.push(b'{"n": 1}')
                return read

        assert Pushed(redis, queue).move(linger=False) == 1
        assert redis.lrange(inbox.keys.inbox, 0, -1) == [b'{"n": 1}']

    def test_an_older_pump_caught_mid_move_by_a_newer_one_moves_nothing(
        self, redis: fakeredis.FakeRedis
    ) -> None:
        """A rolling upgrade: pumps before 2026-12-06 held the turn key as a lock, then WATCHed it."""
        queue, inbox, keys = _four_bodies_waiting(redis)
        assert redis.set(keys.pump_turn, "older-token", nx=True, px=5000)
        with redis.pipeline() as older:
            older.watch(keys.pump_turn)
            read = older.lrange(keys.inbox, -100, -1)
            assert Pump(redis, queue).move(linger=False) == 4
            older.multi()
            older.ltrim(keys.inbox, 0, -(len(read) + 1))
            with pytest.raises(redis_errors.WatchError):
                older.execute()
        assert not redis.set(keys.pump_turn, "older-token", nx=True, px=5000)  # nor can one start again
        assert len(queue.get_job_ids()) == 1 and inbox.depth() == 0

    def test_a_newer_pump_caught_mid_move_by_an_older_one_moves_nothing(
        self, redis: fakeredis.FakeRedis
    ) -> None:
        queue, inbox, keys = _four_bodies_waiting(redis)

        class Overtaken(Pump):
            def _oldest_bodies(self, *args: Any) -> list[bytes] | None:
                read = super()._oldest_bodies(*args)
                # The older pump's whole move: take the lock, WATCH it, move, free it.
                assert redis.set(keys.pump_turn, "older-token", nx=True, px=5000)
                with redis.pipeline() as older:
                    older.watch(keys.pump_turn)
                    older.multi()
                    older.ltrim(keys.inbox, 0, -5)
                    older.execute()
                redis.delete(keys.pump_turn)
                return read

        assert Overtaken(redis, queue).move(linger=False) == 0
        assert inbox.depth() == 0 and queue.get_job_ids() == []


def test_a_redis_error_in_the_pump_leaves_the_worker_to_rqs_own_waiting() -> None:
    """RQ's work loop quits on an exception it does not expect; the pump's must not reach it."""

    class BrokenPump:
        def move(self, **options: bool) -> int:
            raise redis.exceptions.ConnectionError("Redis is restarting")

    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    queue = Queue("q", connection=connection)
    queue.enqueue_many([job_data([b"{}"])])
    worker = LeasedWorker([queue], connection=connection)
    worker.pump = cast(Pump, BrokenPump())
    job, _ = worker.dequeue_job_and_maintain_ttl(timeout=None) or (None, None)
    assert job is not None and job.args == ([b"{}"],)
