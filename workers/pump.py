"""Move bodies from the Redis inbox into RQ jobs, many bodies a job, atomically.

Batches size themselves: a job is made only when no job is waiting for a worker, so at low load a body
becomes a job of its own within milliseconds, and under load the bodies that arrive while every worker is
busy wait in the inbox and leave it together as the next worker's job (up to max_bodies).

A worker takes its share of what waits: the waiting bodies divided by the workers of the queue, never
fewer than a tenth of max_bodies (or all, when fewer wait). So a backlog drains in jobs that shrink as
it does, and its workers finish within a small job of one another, not a full one (bench/README.md);
a lone worker, or a backlog of max_bodies per worker and more, takes full batches as before.
"""

import logging
import time
import uuid
from typing import cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError, WatchError
from rq import Queue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from runtime.config import DEFAULT_BATCH_MAX_BODIES
from runtime.inbox import InboxKeys
from workers.jobs import job_data

log = logging.getLogger(__name__)

# A worker's share of the oldest bodies, unless a job waits and the caller would then leave them (KEYS: the
# queue, the inbox, RQ's set of the queue's workers; ARGV: the most bodies, 1 to leave them while a job
# waits, the fewest bodies worth a share): one round trip for what decides a move.
_OLDEST = """
if ARGV[2] == '1' and redis.call('LLEN', KEYS[1]) > 0 then
  return false
end
local workers = math.max(1, redis.call('SCARD', KEYS[3]))
local share = math.ceil(redis.call('LLEN', KEYS[2]) / workers)
local take = math.min(tonumber(ARGV[1]), math.max(tonumber(ARGV[3]), share))
return redis.call('LRANGE', KEYS[2], -take, -1)
"""
# How long bodies may wait for batch mates once seen: a job costs about 16 Redis round trips, so a
# worker that made a job of every body or two would spend on bookkeeping the CPU the web side needs.
DEFAULT_LINGER_SECONDS = 0.02
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class Pump:
    """Turns the oldest inbox bodies into one RQ job in one MULTI/EXEC: a body is never in both places.

    Optimistic, in three round trips: WATCH the pump's turn key, read the oldest bodies, then enqueue
    them, trim them off the inbox and rewrite the turn key in one transaction. A pump that moved in
    between rewrote the key, so the later EXEC aborts and two pumps never enqueue the same bodies. The
    web's pushes add at the inbox's other end and touch no watched key, so they never abort a move.
    """

    def __init__(
        self,
        redis: Redis,
        queue: Queue,
        max_bodies: int = DEFAULT_BATCH_MAX_BODIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        linger_seconds: float = DEFAULT_LINGER_SECONDS,
    ) -> None:
        self.redis = redis
        self.queue = queue
        self.keys = InboxKeys(queue.name)
        self.max_bodies = max_bodies
        # A job costs about 16 Redis round trips and two transactions: not worth it for a handful.
        self.min_share = max(1, max_bodies // 10)
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds
        # Shared by a worker and its housekeeper thread; a race between them only shifts a linger's end
        # (the move itself is guarded in Redis).
        self._seen_waiting_at: float | None = None
        self._oldest = redis.register_script(_OLDEST)

    def move(self, only_when_no_job_waits: bool = True, linger: bool = True) -> int:
        """Make one job of the oldest waiting bodies, unless a job already waits; return how many moved.

        With linger (an idle worker's housekeeper, every few milliseconds) a cheap look comes first, and
        bodies may wait a moment for batch mates; without (a worker done with a job), the move is tried
        at once.
        """
        if only_when_no_job_waits and linger and not self._worth_moving():
            return 0
        try:
            return self._move(only_when_no_job_waits)
        except WatchError:  # another pump moved first: its job holds what this one read
            return 0

    def _worth_moving(self) -> bool:
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
        return bodies_waiting >= self.max_bodies or now - self._seen_waiting_at >= self.linger_seconds

    def _move(self, only_when_no_job_waits: bool) -> int:
        with self.redis.pipeline() as pipe:
            pipe.watch(self.keys.pump_turn)
            # The web app pushes at the head, so the tail holds the oldest bodies.
            # Our clients never decode responses: bodies come back as the bytes the web app pushed.
            waiting = self._oldest_bodies(pipe, only_when_no_job_waits)
            batch = self._fit(list(reversed(waiting or [])))
            if not batch:
                return 0
            pipe.multi()
            self.queue.enqueue_many([job_data(batch)], pipeline=pipe)
            pipe.ltrim(self.keys.inbox, 0, -(len(batch) + 1))
            pipe.set(self.keys.pump_turn, uuid.uuid4().hex)
            pipe.execute()
        self._seen_waiting_at = None
        log.debug("moved bodies from the inbox", extra={"count": len(batch)})
        return len(batch)

    def _oldest_bodies(self, pipe: Pipeline, only_when_no_job_waits: bool) -> list[bytes] | None:
        """_OLDEST on the watching connection; None when a job waits and only_when_no_job_waits.

        EVALSHA, not the script object: given a pipeline, redis-py would add a SCRIPT EXISTS round trip to
        the transaction.
        """
        keys_and_args = (
            self.queue.key,
            self.keys.inbox,
            WORKERS_BY_QUEUE_KEY % self.queue.name,
            self.max_bodies,
            int(only_when_no_job_waits),
            self.min_share,
        )
        try:
            answer = pipe.evalsha(self._oldest.sha, 3, *keys_and_args)
        except NoScriptError:  # a restarted Redis forgot the script: send it whole (EVAL caches it)
            answer = pipe.eval(_OLDEST, 3, *keys_and_args)
        return cast(list[bytes] | None, answer)

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
