"""A job RQ moved off the queue but never registered as started (a Redis failover between the two round
trips) is retried within seconds, not after RQ's minute."""

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis
from rq import Queue, Retry
from rq.job import Job

from workers import runner
from workers.runner import Housekeeper, LeasedWorker


@pytest.fixture
def queue(redis_url: str) -> Iterator[Queue]:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("stuck-test", connection=connection)
    queue.empty()
    connection.delete(queue.intermediate_queue_key)
    yield queue
    queue.empty()
    connection.delete(queue.intermediate_queue_key)


def _stuck_job(queue: Queue) -> Job:
    """A job as RQ's dequeue leaves it when Redis fails before the job is registered as started."""
    job = queue.enqueue(len, [1, 2, 3], retry=Retry(max=1))
    queue.connection.lmove(queue.key, queue.intermediate_queue_key, "RIGHT", "LEFT")
    assert queue.intermediate_queue.get_job_ids() == [job.id] and queue.job_ids == []
    return job


def _reap(queue: Queue) -> None:
    """One turn of the reaper (any worker's), its one-second lock released for the next turn."""
    worker = LeasedWorker([queue], connection=queue.connection)
    Housekeeper(worker, SimpleNamespace(redis=queue.connection, queue=queue), pump=None).reap()
    queue.connection.delete(f"wahooks:{queue.name}:reaper-lock")


def test_a_stuck_job_is_retried_once_seen_for_stuck_seconds(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _stuck_job(queue)
    _reap(queue)  # first seen now
    _reap(queue)
    assert queue.job_ids == [], f"retried before {runner.STUCK_SECONDS} s"
    monkeypatch.setattr(runner, "STUCK_SECONDS", 0)
    _reap(queue)
    assert queue.job_ids == [job.id]
    assert queue.intermediate_queue.get_job_ids() == []
    assert Job.fetch(job.id, connection=queue.connection).retries_left == 0


def test_a_job_registered_as_started_is_left_to_its_worker(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _stuck_job(queue)
    # As RQ's second round trip registers it: an execution of the job, in the started registry.
    queue.connection.zadd(queue.started_job_registry.key, {f"{job.id}:execution": time.time() + 60})
    monkeypatch.setattr(runner, "STUCK_SECONDS", 0)
    for _ in range(2):
        _reap(queue)
    assert queue.job_ids == []
    assert queue.intermediate_queue.get_job_ids() == [job.id]
