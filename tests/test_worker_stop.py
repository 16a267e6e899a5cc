"""A worker stops when asked, and only then: never waiting a minute for RQ's pub/sub thread, never ending
on an error RQ's own loop gives up on."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
import redis
import rq.worker.base as rq_worker
from rq import Queue
from rq.suspension import is_suspended as rq_is_suspended

from workers import runner
from workers.runner import PUBSUB_TURN_SECONDS, LeasedWorker


def test_a_worker_whose_thread_already_saw_the_unsubscription_stops_within_seconds(redis_url: str) -> None:
    """The race that hung exits: the thread reads the unsubscription before RQ asks it to stop."""
    connection = redis.Redis.from_url(redis_url)
    worker = LeasedWorker([Queue("stop-test", connection=connection)], connection=connection)
    worker.subscribe()
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 10
    while worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pubsub.subscribed, "the pub/sub thread never read the unsubscription"

    started = time.monotonic()
    worker.unsubscribe()
    # RQ's own thread would sleep out its 60 s turn here.
    assert time.monotonic() - started < PUBSUB_TURN_SECONDS + 5


@pytest.fixture
def services(redis_url: str) -> Iterator[SimpleNamespace]:
    """What one worker loop uses of its services: a Redis, an empty queue, a batch size."""
    connection = redis.Redis.from_url(redis_url)
    queue = Queue("stop-test", connection=connection)
    queue.empty()
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield SimpleNamespace(redis=connection, queue=queue, batch_max_bodies=10)
    for number, handler in handlers.items():  # RQ's loop installs its own
        signal.signal(number, handler)
    queue.empty()


def _suspension_check_that(monkeypatch: pytest.MonkeyPatch, first: Callable[[], bool]) -> None:
    """RQ's check for `rq suspend` runs `first` on its first call, then answers as usual."""
    calls: list[None] = []

    def is_suspended(connection: redis.Redis, worker: object = None) -> bool:
        calls.append(None)
        return first() if len(calls) == 1 else rq_is_suspended(connection, worker)

    monkeypatch.setattr(rq_worker, "is_suspended", is_suspended)


def _fail(error: Exception) -> Callable[[], bool]:
    def raising() -> bool:
        raise error

    return raising


def test_a_redis_error_in_the_suspension_check_does_not_end_the_worker(
    services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a Redis failover: RQ's loop would log the error and quit, leaving the job waiting."""
    job = services.queue.enqueue(len, [1, 2, 3])
    _suspension_check_that(monkeypatch, _fail(redis.ConnectionError("failing over")))
    assert runner._work_once(services, burst=True)
    assert job.get_status(refresh=True) == "finished"


def test_a_worker_loop_that_quits_on_an_error_is_started_afresh(
    services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    _suspension_check_that(monkeypatch, _fail(ValueError("anything RQ does not expect")))
    with pytest.raises(runner.LoopEnded):
        runner._work_once(services, burst=False)


def test_a_worker_asked_to_stop_ends_for_good(
    services: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sigterm() -> bool:
        os.kill(os.getpid(), signal.SIGTERM)
        return False

    _suspension_check_that(monkeypatch, sigterm)
    assert runner._work_once(services, burst=False) is False
