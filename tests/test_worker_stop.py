"""A stopping worker never waits a minute for RQ's pub/sub thread."""

import time

import redis
from rq import Queue

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
