"""Move bodies from the Redis inbox into RQ jobs, many bodies a job, atomically.

Batches size themselves: a job is made only when no job is waiting for a worker, so at low load a body
becomes a job of its own within milliseconds, and under load the bodies that arrive while every worker is
busy wait in the inbox and leave it together as the next worker's job (up to max_bodies).
"""

import logging
import time
import uuid
from typing import cast

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue

from runtime.inbox import InboxKeys
from workers.jobs import job_data

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
DEFAULT_MAX_BODIES = 100
# How long bodies may wait for batch mates once seen: a job costs RQ a dozen Redis round trips, so a
# worker that made a job of every body or two would spend on bookkeeping the CPU the web side needs.
DEFAULT_LINGER_SECONDS = 0.02
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class Pump:
    """Turns the oldest inbox bodies into one RQ job in one MULTI/EXEC: a body is never in both places.

    One pump at a time holds a short lock; WATCH on that lock aborts a move whose lock expired
    mid-way, so two pumps never enqueue the same bodies.
    """

    def __init__(
        self,
        redis: Redis,
        queue: Queue,
        max_bodies: int = DEFAULT_MAX_BODIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        lock_ms: int = 5000,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.keys = InboxKeys(queue.name)
        self.max_bodies = max_bodies
        self.max_bytes = max_bytes
        self.lock_ms = lock_ms
        self.linger_seconds = linger_seconds
        # Shared by a worker and its housekeeper thread; a race between them only shifts a linger's end
        # (the move itself is under the Redis lock).
        self._seen_waiting_at: float | None = None
        self._release = redis.register_script(_RELEASE)

    def move(self, only_when_no_job_waits: bool = True, linger: bool = True) -> int:
        """Make one job of the oldest waiting bodies, unless a job already waits; return how many moved."""
        if only_when_no_job_waits and not self._worth_moving(linger):
            return 0
        token = uuid.uuid4().hex
        if not self.redis.set(self.keys.pump_lock, token, nx=True, px=self.lock_ms):
            return 0
        try:
            return self._move_locked(only_when_no_job_waits)
        except WatchError:
            return 0
        finally:
            self._release(keys=[self.keys.pump_lock], args=[token])

    def _worth_moving(self, linger: bool) -> bool:
        """No job waits, and a full batch waits or bodies have waited linger_seconds since this pump saw them.

        One round trip: this runs every few milliseconds when idle.
        """
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.llen(self.queue.key)
            pipe.llen(self.keys.inbox)
            jobs_waiting, bodies_waiting = pipe.execute()
        if jobs_waiting or not bodies_waiting:
            self._seen_waiting_at = None
            return False
        now = time.monotonic()
        if self._seen_waiting_at is None:
            self._seen_waiting_at = now
        return (
            not linger
            or bodies_waiting >= self.max_bodies
            or now - self._seen_waiting_at >= self.linger_seconds
        )

    def _move_locked(self, only_when_no_job_waits: bool) -> int:
        with self.redis.pipeline() as pipe:
            pipe.watch(self.keys.pump_lock)
            if only_when_no_job_waits and pipe.llen(self.queue.key):
                return 0  # another pump made a job since we looked
            # The web app pushes at the head, so the tail holds the oldest bodies.
            # Our clients never decode responses: bodies come back as the bytes the web app pushed.
            waiting = cast(list[bytes], pipe.lrange(self.keys.inbox, -self.max_bodies, -1))
            oldest_first = list(reversed(waiting))
            batch = self._fit(oldest_first)
            if not batch:
                return 0
            pipe.multi()
            self.queue.enqueue_many([job_data(batch)], pipeline=pipe)
            pipe.ltrim(self.keys.inbox, 0, -(len(batch) + 1))
            pipe.execute()
        self._seen_waiting_at = None
        log.debug("moved bodies from the inbox", extra={"count": len(batch)})
        return len(batch)

    def _fit(self, bodies: list[bytes]) -> list[bytes]:
        """The longest prefix within max_bytes, and never less than one body."""
        total = 0
        for n, body in enumerate(bodies):
            total += len(body)
            if total > self.max_bytes and n > 0:
                return bodies[:n]
        return bodies

    def drain(self) -> int:
        """Move everything waiting now into jobs (burst mode: the worker then stops when they are done)."""
        moved = total = self.move(only_when_no_job_waits=False)
        while moved:
            moved = self.move(only_when_no_job_waits=False)
            total += moved
        return total
