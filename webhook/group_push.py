"""Concurrent requests in one web process hand their bodies to Redis in one shared round trip.

A round trip per POST is what bounds intake (bench/README.md): the thread that finds no push in
flight leads, and pushes every body that arrived while the previous push was in flight; the
others wait for its answer. Each request still gets its 200 only once its own body is in Redis.
At low load every push travels alone, so nothing waits for company. A round trip that fails
fails those already waiting for the next one as well, so while Redis stalls a request waits for at
most the one round trip in flight when it arrived (one client timeout), never for two.
"""

import threading
from collections.abc import Callable

# A follower whose leader has not answered by then gives up (a 503: Meta delivers again).
# The leader's Redis client times out well before this, so it is a guard against a bug, not a limit.
FOLLOWER_PATIENCE_SECONDS = 10.0


class _Passenger:
    """One body waiting for a round trip; `arrived` is held until the answer (or the lead) is handed over."""

    __slots__ = ("arrived", "body", "error", "leads", "queued")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.arrived = threading.Lock()
        self.arrived.acquire()
        self.queued = False
        self.error: BaseException | None = None
        self.leads = False

    def answer(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.queued


class GroupPush:
    """Shares `push_many` round trips among the threads of one process; `push` answers for one body."""

    def __init__(self, push_many: Callable[[list[bytes]], list[bool]]) -> None:
        self._push_many = push_many
        self._lock = threading.Lock()
        self._waiting: list[_Passenger] = []
        self._in_flight = False

    def push(self, body: bytes) -> bool:
        """Queue a body as Inbox.push does; raises what the shared push raised."""
        me = _Passenger(body)
        with self._lock:
            self._waiting.append(me)
            me.leads = not self._in_flight
            self._in_flight = True
        if not me.leads and not me.arrived.acquire(timeout=FOLLOWER_PATIENCE_SECONDS):
            self._give_up(me)
        if me.leads:
            self._lead()
        return me.answer()

    def _give_up(self, me: _Passenger) -> None:
        """A follower out of patience leaves, unless the lead reached it meanwhile (then it must take it)."""
        with self._lock:
            if me.leads:
                return
            if me in self._waiting:
                self._waiting.remove(me)
        raise TimeoutError("no answer from the shared push to Redis")

    def _lead(self) -> None:
        """Push everything waiting and answer each passenger; then pass the lead on, or put it down."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            flags = self._push_many([passenger.body for passenger in batch])
        except BaseException as error:  # every passenger must hear back, whatever went wrong
            self._fail(batch, error)
        else:
            self._answer(batch, flags)

    def _answer(self, batch: list[_Passenger], flags: list[bool]) -> None:
        """Each passenger of a round trip that worked hears its own flag; the first one waiting leads next."""
        for passenger, queued in zip(batch, flags, strict=True):
            passenger.queued = queued
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            if successor is None:
                self._in_flight = False
            else:
                successor.leads = True
        for passenger in batch:
            passenger.arrived.release()
        if successor is not None:
            successor.arrived.release()

    def _fail(self, batch: list[_Passenger], error: BaseException) -> None:
        """A failed round trip fails its passengers and those waiting for the next one; the lead is put down.

        What failed it (Redis stalled or gone) would fail the next trip too, after another timeout.
        """
        with self._lock:
            stranded, self._waiting = self._waiting, []
            self._in_flight = False
        for passenger in (*batch, *stranded):
            passenger.error = error
            passenger.arrived.release()
