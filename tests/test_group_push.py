"""Concurrent requests share Redis round trips, and each still hears exactly what happened to its own body."""

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from webhook import group_push
from webhook.group_push import GroupPush

WAIT = 5.0  # bounds every wait in these tests, so a bug fails them rather than hanging them


class FakeInbox:
    """push_many that records its batches, answers False for a body seen before, and can be held or broken."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.pushed_by: list[str] = []
        self.seen: set[bytes] = set()
        self.entered = threading.Semaphore(0)
        self.gate = threading.Event()
        self.gate.set()
        self.failure: Exception | None = None
        self.delay: Callable[[], float] = lambda: 0.0
        self.atomic = threading.Lock()  # a Lua script runs alone, whichever connection sent it

    def push_many(self, bodies: list[bytes]) -> list[bool]:
        self.entered.release()
        assert self.gate.wait(WAIT)
        time.sleep(self.delay())
        self.batches.append(bodies)
        self.pushed_by.append(threading.current_thread().name)
        if self.failure is not None:
            raise self.failure
        flags = []
        with self.atomic:
            for body in bodies:  # in order, as the Lua script does: a twin later in the batch is not queued
                flags.append(body not in self.seen)
                self.seen.add(body)
        return flags

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def inbox() -> FakeInbox:
    return FakeInbox()


@pytest.fixture
def shared(inbox: FakeInbox) -> GroupPush:
    return GroupPush(inbox.push_many)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=64, thread_name_prefix="request") as executor:
        yield executor


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def during_a_held_trip(
    shared: GroupPush, inbox: FakeInbox, pool: ThreadPoolExecutor, *bodies: bytes
) -> tuple[Future[bool], list[Future[bool]]]:
    """Start pushing b"first", hold its round trip in flight, and let bodies arrive meanwhile."""
    inbox.hold()
    first = pool.submit(shared.push, b"first")
    assert inbox.entered.acquire(timeout=WAIT)
    later = [pool.submit(shared.push, body) for body in bodies]
    wait_until(lambda: len(shared._waiting) == len(later))
    return first, later


def test_a_lone_push_travels_at_once_and_alone(shared: GroupPush, inbox: FakeInbox) -> None:
    assert shared.push(b"a") is True
    assert shared.push(b"a") is False
    assert inbox.batches == [[b"a"], [b"a"]]


def test_bodies_arriving_during_a_round_trip_share_the_next_one(
    shared: GroupPush, inbox: FakeInbox, pool: ThreadPoolExecutor
) -> None:
    first, later = during_a_held_trip(shared, inbox, pool, b"x", b"y", b"first", b"x")
    inbox.release()
    assert first.result(WAIT) is True
    # In arrival order: a body already pushed, or twice in the batch, is not queued again.
    assert sorted(f.result(WAIT) for f in later) == [False, False, True, True]
    assert len(inbox.batches) == 2
    assert sorted(inbox.batches[1]) == [b"first", b"x", b"x", b"y"]


def test_the_next_round_trip_is_led_by_a_waiting_request_not_the_one_that_led_before(
    shared: GroupPush, inbox: FakeInbox, pool: ThreadPoolExecutor
) -> None:
    first, (second,) = during_a_held_trip(shared, inbox, pool, b"second")
    inbox.release()
    assert first.result(WAIT) and second.result(WAIT)
    assert inbox.pushed_by[0] != inbox.pushed_by[1]


def test_a_failed_round_trip_fails_those_waiting_for_the_next_one_without_another_trip(
    shared: GroupPush, inbox: FakeInbox, pool: ThreadPoolExecutor
) -> None:
    """While Redis stalls, a request that arrives during a round trip hears when that trip times out,
    rather than after a second trip that would stall as long."""
    inbox.failure = RedisTimeoutError("Timeout reading from socket")
    first, later = during_a_held_trip(shared, inbox, pool, b"x", b"y")
    inbox.release()
    for future in (first, *later):
        with pytest.raises(RedisTimeoutError):
            future.result(WAIT)
    assert inbox.batches == [[b"first"]]
    inbox.failure = None
    assert shared.push(b"z") is True
    assert inbox.batches[-1] == [b"z"]


def test_a_request_out_of_patience_leaves_and_the_lead_still_passes_on(
    shared: GroupPush, inbox: FakeInbox, pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_push, "FOLLOWER_PATIENCE_SECONDS", 0.05)
    inbox.hold()
    first = pool.submit(shared.push, b"first")
    assert inbox.entered.acquire(timeout=WAIT)
    impatient = pool.submit(shared.push, b"impatient")
    with pytest.raises(TimeoutError):
        impatient.result(WAIT)
    patient = pool.submit(shared.push, b"patient")
    wait_until(lambda: len(shared._waiting) == 1)
    monkeypatch.setattr(group_push, "FOLLOWER_PATIENCE_SECONDS", WAIT)
    inbox.release()
    assert first.result(WAIT) and patient.result(WAIT)
    assert inbox.batches == [[b"first"], [b"patient"]]
    assert shared.push(b"after") is True


@pytest.mark.parametrize("lanes", [1, 3])
def test_under_many_threads_every_body_is_pushed_once_and_every_answer_is_its_own(
    inbox: FakeInbox, pool: ThreadPoolExecutor, lanes: int
) -> None:
    shared = GroupPush(*[inbox.push_many] * lanes)
    chance = random.Random(9)
    inbox.delay = lambda: chance.random() / 2000
    bodies = [f"body-{n}".encode() for n in range(2000)]
    answers = list(pool.map(shared.push, bodies + bodies[:100]))
    pushed = [body for batch in inbox.batches for body in batch]
    assert sorted(pushed) == sorted(bodies + bodies[:100])
    assert answers.count(True) == len(bodies)
    assert all(answers[: len(bodies)][100:])
    assert len(inbox.batches) < len(pushed), "some round trips must have been shared"


def test_with_two_lanes_two_requests_travel_at_once_and_a_third_takes_the_first_lane_back(
    inbox: FakeInbox, pool: ThreadPoolExecutor
) -> None:
    shared = GroupPush(inbox.push_many, inbox.push_many)
    inbox.hold()
    first, second = pool.submit(shared.push, b"a"), pool.submit(shared.push, b"b")
    assert inbox.entered.acquire(timeout=WAIT) and inbox.entered.acquire(timeout=WAIT)
    third = pool.submit(shared.push, b"c")
    wait_until(lambda: len(shared._waiting) == 1)
    inbox.release()
    assert first.result(WAIT) and second.result(WAIT) and third.result(WAIT)
    assert sorted(map(tuple, inbox.batches)) == [(b"a",), (b"b",), (b"c",)]


def test_a_lane_whose_trip_fails_fails_its_riders_and_the_waiting_but_not_the_other_lanes_trip(
    pool: ThreadPoolExecutor,
) -> None:
    broken, working = FakeInbox(), FakeInbox()
    broken.failure = RedisTimeoutError("Timeout reading from socket")
    shared = GroupPush(broken.push_many, working.push_many)  # the first request takes the last free lane
    broken.hold()
    working.hold()
    on_working = pool.submit(shared.push, b"a")
    assert working.entered.acquire(timeout=WAIT)
    on_broken = pool.submit(shared.push, b"b")
    assert broken.entered.acquire(timeout=WAIT)
    waiting = pool.submit(shared.push, b"c")
    wait_until(lambda: len(shared._waiting) == 1)
    broken.release()
    for future in (on_broken, waiting):
        with pytest.raises(RedisTimeoutError):
            future.result(WAIT)
    assert not on_working.done()
    working.release()
    assert on_working.result(WAIT) is True
    broken.failure = None
    assert shared.push(b"d") is True and shared.push(b"e") is True
