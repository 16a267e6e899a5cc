"""What a worker pays Redis per job, in round trips: each costs a whole network hop when Redis is on
another host (bench/latency.py), so the count is pinned, not left to chance."""

import zlib
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from redis.connection import AbstractConnection
from rq import Queue
from rq.job import Job, JobStatus

from runtime.inbox import Inbox
from workers.pump import Pump
from workers.runner import LeasedWorker


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every write a Redis client sends from here on: one per round trip (a pipeline writes once)."""
    sent: list[Any] = []
    original = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    yield sent


def test_a_worker_done_with_a_job_makes_its_next_in_three_round_trips(
    redis: fakeredis.FakeRedis, trips: list[Any]
) -> None:
    queue = Queue("q", connection=redis)
    inbox, pump = Inbox(redis, "q"), Pump(redis, queue)
    inbox.push(b"{}")
    assert pump.move(linger=False) == 1  # once a process: the script loaded, the server's version read
    queue.pop_job_id()
    inbox.push_many([f'{{"n": {n}}}'.encode() for n in range(100)])
    trips.clear()
    assert pump.move(linger=False) == 100
    assert len(trips) == 3  # WATCH, read the oldest bodies, enqueue them in MULTI/EXEC


def test_a_heartbeat_is_one_round_trip_and_does_what_rqs_does(
    redis: fakeredis.FakeRedis, trips: list[Any]
) -> None:
    worker = LeasedWorker([Queue("q", connection=redis)], connection=redis)
    worker.register_birth()
    redis.persist(worker.key)
    trips.clear()
    worker.heartbeat(90)
    assert len(trips) == 1
    assert redis.hget(worker.key, "last_heartbeat") is not None
    assert redis.ttl(worker.key) == 90


def test_a_jobs_bodies_are_compressed_and_sent_once_not_again_when_it_ends(
    redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ saves a job whole when it ends; the bodies it holds are megabytes, and Redis has them already."""
    compressed: list[int] = []
    compress = zlib.compress

    def counted(data: bytes, /, level: int = -1, wbits: int = 15) -> bytes:
        compressed.append(len(data))
        return compress(data, level, wbits)

    monkeypatch.setattr(zlib, "compress", counted)
    queue = Queue("q", connection=redis)
    bodies = [b'{"object": "whatsapp_business_account", "n": %d}' % n for n in range(2000)]
    job = queue.enqueue("builtins.len", bodies)
    assert LeasedWorker([queue], connection=redis).work(burst=True)
    finished = Job.fetch(job.id, connection=redis)
    assert finished.get_status() == JobStatus.FINISHED
    assert finished.args == (bodies,)  # still there, as enqueued
    assert [n for n in compressed if n > 1000] == [len(job.data)]  # at enqueue only
