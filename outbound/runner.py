"""The outbound worker process (`wahooks outbound worker`, the Procfile's `outbound:` line): a non-forking
RQ worker on the outbound queue, whose housekeeper also sweeps.

It is the processing worker's machinery (workers/runner.py: leases renewed every 2 s, a dead worker's job
reaped within seconds, due retries enqueued) on a queue of its own, so a slow or failing Graph API never
delays webhook processing. The sweep, every few seconds under a lock one worker holds at a time:
- enqueues pending requests no job holds (the processing worker died between its commit and its
  enqueue; Meta's pause is over; a job was lost), each at most once every STALE_ENQUEUE;
- settles requests left `sending` past any attempt's length (a repeatable one pending again, a send
  `unknown`);
- reconciles unknown sends from the status webhooks (outbound/reconcile.py).
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from outbound import intents, reconcile
from outbound.hook import enqueue_requests
from outbound.jobs import JOB_TIMEOUT_SECONDS
from outbound.kinds import BY_NAME
from outbound.services import OutboundServices
from workers.runner import RESTART_DELAY_SECONDS, Housekeeper, LeasedWorker, work_beside, worker_name

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 5.0
STALE_ENQUEUE = timedelta(minutes=2)
# No attempt outlives its job's timeout: one still `sending` after it (and a margin) died.
LEASE = timedelta(seconds=JOB_TIMEOUT_SECONDS + 60)
RECONCILE_WINDOW = timedelta(days=2)
SWEEP_BATCH = 500


@dataclass
class Swept:
    enqueued: int = 0
    settled: int = 0
    reconciled: int = 0


def sweep(svc: OutboundServices, now: datetime | None = None) -> Swept:
    """One sweep (see the module's doc); `now` lets a test look from the future."""
    now = now or intents.utcnow()
    swept = Swept()
    for request_id, kind in intents.abandoned(svc.db, LEASE, SWEEP_BATCH, now):
        intents.settle_abandoned(svc.db, request_id, BY_NAME[kind].repeatable, LEASE, now)
        swept.settled += 1
    due = intents.due_for_enqueue(svc.db, STALE_ENQUEUE, SWEEP_BATCH, now)
    if due:
        enqueue_requests(svc.queue, due)
        intents.mark_enqueued(svc.db, due, now)
        swept.enqueued = len(due)
    for request_id in reconcile.unknown_since(svc.db, RECONCILE_WINDOW, SWEEP_BATCH):
        swept.reconciled += reconcile.settle(svc.db, request_id) is not None
    if swept.enqueued or swept.settled or swept.reconciled:
        log.info(
            "outbound sweep: %d enqueued, %d abandoned settled, %d reconciled",
            swept.enqueued,
            swept.settled,
            swept.reconciled,
        )
    return swept


class OutboundHousekeeper(Housekeeper):
    """The processing worker's housekeeper (leases, reaping, due retries) minus the inbox, plus the sweep."""

    idle_seconds = 0.25

    def __init__(self, worker: LeasedWorker, services: OutboundServices) -> None:
        super().__init__(worker, services, None)
        self.outbound = services
        self._sweep_lock = f"wahooks:{services.queue.name}:sweep-lock"
        self._next_sweep = 0.0

    def reap(self) -> None:
        super().reap()
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_SECONDS
        if self.services.redis.set(self._sweep_lock, "1", nx=True, px=int(SWEEP_EVERY_SECONDS * 1000)):
            sweep(self.outbound)


def run(services: OutboundServices, burst: bool = False) -> bool:
    """Run an outbound worker until stopped (with burst: until its queue is empty, after one sweep)."""
    services.db.check_schema()
    while True:
        try:
            return _work_once(services, burst)
        except RedisError as error:
            log.error("redis failed under the outbound worker, starting afresh: %s", error)
            time.sleep(RESTART_DELAY_SECONDS)


def _work_once(services: OutboundServices, burst: bool) -> bool:
    worker = LeasedWorker(
        [services.queue], connection=services.redis, name=worker_name(), log_job_description=False
    )
    keeper = OutboundHousekeeper(worker, services)
    if burst:
        sweep(services)  # RQ stops a burst worker at its first empty dequeue
    return work_beside(worker, keeper, burst)
