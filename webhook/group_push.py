"""Concurrent requests in one web process hand their bodies to Redis in shared round trips.

A round trip per POST is what bounds intake (bench/README.md). Each lane is a connection that one
round trip at a time uses: a request that finds a lane free leads a trip on it at once; one that finds
every lane busy waits, and the first trip to come back takes everything that waited meanwhile. Each
request still gets its 200 only once its own body is in Redis. One lane makes the biggest batches and
the least CPU on a machine that shares Redis's host; more lanes keep requests from waiting behind a trip
in flight when each round trip is slow (Redis on another host). A round trip that fails fails those
already waiting as well, so while Redis stalls a request waits for at most the one round trip in flight
when it arrived (one client timeout), never for two.
"""

import threading
from collections.abc import Callable

# A follower whose leader has not answered by then gives up (a 503: Meta delivers again).
# The leader's Redis client times out well before this, so it is a guard against a bug, not a limit.
FOLLOWER_PATIENCE_SECONDS = 10.0

PushMany = Callable[[list[bytes]], list[bool]]


class _Passenger:
    """One body waiting for a round trip; `arrived` is held until the answer (or a lane) is handed over."""

    __slots__ = ("arrived", "body", "error", "lane", "queued")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.arrived = threading.Lock()
        self.arrived.acquire()
        self.queued = False
        self.error: BaseException | None = None
        self.lane: PushMany | None = None  # set when this passenger leads a round trip on that lane

    def answer(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.queued


class GroupPush:
    """Shares round trips among the threads of one process; `push` answers for one body.

    Each lane is a `push_many` that no two threads may call at once (Inbox.single_caller_push).
    """

    def __init__(self, *lanes: PushMany) -> None:
        if not lanes:
            raise ValueError("GroupPush needs at least one lane")
        self._lock = threading.Lock()
        self._waiting: list[_Passenger] = []
        self._free = list(lanes)  # never free while a passenger waits: a returning trip hands its lane over

    def push(self, body: bytes) -> bool:
        """Queue a body as Inbox.push does; raises what the shared push raised."""
        me = _Passenger(body)
        with self._lock:
            if self._free:
                me.lane = self._free.pop()
            else:
                self._waiting.append(me)
        if me.lane is None and not me.arrived.acquire(timeout=FOLLOWER_PATIENCE_SECONDS):
            self._give_up(me)
        if me.lane is not None:
            self._lead(me, me.lane)
        return me.answer()

    def _give_up(self, me: _Passenger) -> None:
        """A passenger out of patience leaves, unless a lane reached it meanwhile (then it must lead)."""
        with self._lock:
            if me.lane is not None:
                return
            if me in self._waiting:  # else it rides a trip in flight, which will answer no one listening
                self._waiting.remove(me)
        raise TimeoutError("no answer from the shared push to Redis")

    def _lead(self, me: _Passenger, lane: PushMany) -> None:
        """Push this body and everything waiting on the lane, answer each passenger, then pass the lane on."""
        with self._lock:
            batch, self._waiting = [me, *self._waiting], []
        try:
            flags = lane([passenger.body for passenger in batch])
        except BaseException as error:  # every passenger must hear back, whatever went wrong
            self._fail(batch, error, lane)
        else:
            self._answer(batch, flags, lane)

    def _answer(self, batch: list[_Passenger], flags: list[bool], lane: PushMany) -> None:
        """Each passenger of a round trip that worked hears its own flag; the first one waiting leads next."""
        for passenger, queued in zip(batch, flags, strict=True):
            passenger.queued = queued
        with self._lock:
            # The successor leaves the waiting list with the lane, so that no other lane hands it one too.
            successor = self._waiting.pop(0) if self._waiting else None
            if successor is None:
                self._free.append(lane)
            else:
                successor.lane = lane
        for passenger in batch:
            if passenger.lane is None:  # the leader is not waiting on its lock
                passenger.arrived.release()
        if successor is not None:
            successor.arrived.release()

    def _fail(self, batch: list[_Passenger], error: BaseException, lane: PushMany) -> None:
        """A failed round trip fails its passengers and those waiting for the next one; its lane is freed.

        What failed it (Redis stalled or gone) would fail the next trip too, after another timeout.
        """
        with self._lock:
            stranded, self._waiting = self._waiting, []
            self._free.append(lane)
        for passenger in (*batch, *stranded):
            passenger.error = error
            if passenger.lane is None:
                passenger.arrived.release()
