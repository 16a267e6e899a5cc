"""Move bodies from the Redis inbox into RQ jobs, many bodies a job, atomically."""

import logging
import uuid

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue

from runtime.inbox import JOB_PATH, InboxKeys
from workers.jobs import job_options

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Pump:
    """Turns the oldest inbox bodies into one RQ job in one MULTI/EXEC: a body is never in both places.

    One pump at a time holds a short lock; WATCH on that lock aborts a move whose lock expired
    mid-way, so two pumps never enqueue the same bodies.
    """

    def __init__(
        self,
        redis: Redis,
        queue: Queue,
        max_bodies: int = 100,
        max_bytes: int = 4 * 1024 * 1024,
        lock_ms: int = 5000,
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.keys = InboxKeys(queue.name)
        self.max_bodies = max_bodies
        self.max_bytes = max_bytes
        self.lock_ms = lock_ms
        self._release = redis.register_script(_RELEASE)

    def move(self) -> int:
        """Move up to one job's worth of bodies; return how many moved."""
        token = uuid.uuid4().hex
        if not self.redis.set(self.keys.pump_lock, token, nx=True, px=self.lock_ms):
            return 0
        try:
            return self._move_locked()
        except WatchError:
            return 0
        finally:
            self._release(keys=[self.keys.pump_lock], args=[token])

    def _move_locked(self) -> int:
        with self.redis.pipeline() as pipe:
            pipe.watch(self.keys.pump_lock)
            # The web app pushes at the head, so the tail holds the oldest bodies.
            oldest_first = list(reversed(pipe.lrange(self.keys.inbox, -self.max_bodies, -1)))
            batch = self._fit(oldest_first)
            if not batch:
                return 0
            pipe.multi()
            self.queue.enqueue_many(
                [Queue.prepare_data(JOB_PATH, args=(batch,), **job_options(len(batch)))], pipeline=pipe
            )
            pipe.ltrim(self.keys.inbox, 0, -(len(batch) + 1))
            pipe.execute()
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
        """Move everything waiting now (for the embedded mode and tests)."""
        moved = total = self.move()
        while moved:
            moved = self.move()
            total += moved
        return total
