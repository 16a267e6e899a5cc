"""The worker process: a non-forking RQ worker, plus the housekeeping that keeps work moving."""

import logging
import os
import socket
import threading
import time
import uuid
from types import FrameType
from typing import Any, Protocol

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import now

from runtime.config import metrics_port
from workers import metrics
from workers.pump import Pump
from workers.services import Services

log = logging.getLogger(__name__)

LEASE_SECONDS = 6
RENEW_EVERY_SECONDS = 2.0
REAP_EVERY_SECONDS = 1.0
# How often an idle worker's housekeeper looks for new bodies: the worst added latency at low load.
PUMP_IDLE_SECONDS = 0.01
RESTART_DELAY_SECONDS = 1.0
# A job RQ moved off the queue but never registered as started (its worker or Redis failed in between)
# is handed back to RQ's failure handling (a retry) once seen this long; RQ's own wait is a minute.
STUCK_SECONDS = 10
# How long RQ's pub/sub thread (worker commands such as `rq suspend`) waits per turn, so the longest a
# stopping worker waits for it.
PUBSUB_TURN_SECONDS = 1.0


class FetchedJob(Job):
    """A job as a worker fetched it, whose save leaves its data to the copy Redis holds while it is unchanged.

    RQ saves a job whole when it ends (finished, failed, retried), compressing its data again though only
    its state changed (rq 3.0). A processing job's data is its bodies: 3 MB and 35 ms of zlib for 500 mixed
    bodies, a worker's CPU spent twice per job (bench/README.md). Redis keeps the data field it has: an
    HSET writes only the fields it names.
    """

    _fetched: bytes | None = None

    def restore(self, raw_data: Any) -> None:
        super().restore(raw_data)
        self._fetched = self.data  # as read from Redis

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, Any]:
        data = self._data
        if self._fetched is None or data is not self._fetched:
            return super().to_dict(include_meta, include_result)
        self._data = b""  # what RQ compresses for a field that is not written: nothing
        try:
            mapping = super().to_dict(include_meta, include_result)
        finally:
            self._data = data
        del mapping["data"]
        return mapping


class LeasedWorker(SimpleWorker):
    """A SimpleWorker whose running job holds a lease of seconds, renewed by the housekeeper thread.

    RQ keeps a started job's registry entry alive for the job timeout plus a minute; a SIGKILLed
    worker's job would wait that long. With a short lease renewed while the process lives, a dead
    worker's job expires within LEASE_SECONDS and any worker's reaper hands it back to RQ's own
    abandoned-job handling (retry while retries are left, else the failed registry).
    """

    job_class = FetchedJob
    pump: Pump | None = None
    stop_requested = False  # by a signal (or `rq shutdown`): the one reason its loop may end for good
    # RQ's dequeue retries a lost Redis after 1, 2, 4 ... up to 60 s; a failover or restart that took 20 s
    # then left the worker idle for up to 30 s more (tests/test_sentinel.py timed out on it under load).
    max_connection_wait_time = 2.0

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq 3.0 leaves it unannotated

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for `rq suspend`, run before every job; a Redis error there would end RQ's loop.

        RQ's loop quits on any error outside its dequeue (rq 3.0), and this check is the first Redis call
        of a turn, so a failover ended the worker (tests/test_sentinel.py saw it). The dequeue that comes
        next waits for Redis itself.
        """
        try:
            super().check_for_suspension(burst)
        except RedisError as error:
            log.warning("redis unavailable to the suspension check: %s", error)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return LEASE_SECONDS

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat (a field and two expiries) in one round trip, not three.

        RQ's loop sends three a job outside any pipeline (rq 3.0): nine round trips a job, each paid in
        full when Redis is a network hop away (bench/latency.py).
        """
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipe)
            pipe.execute()

    def subscribe(self) -> None:
        """RQ's subscription to this worker's command channel, with a thread that stops within a second.

        RQ's thread waits 60 s a turn. Once the channel is unsubscribed, redis-py's get_message sleeps out
        that whole wait, and RQ joins the thread without a timeout: a worker's exit could hang for a
        minute when the thread read the unsubscription before RQ asked it to stop (rq 3.0, redis-py 8.2).
        """
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        # rq 3.0 declares pubsub_thread as None only, though its own subscribe() sets it the same way.
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_TURN_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Make this worker's next job from everything waiting in the inbox, then take a job as RQ does.

        Under load, a worker that finishes a job takes all the bodies that arrived meanwhile as one batch,
        at once: they had the job's whole length to gather batch mates. (Only an idle worker's
        housekeeper lets bodies linger.)
        (RQ's work loop calls this before every job; checked against rq 3.0.)
        """
        if self.pump is not None:
            try:
                self.pump.move(linger=False)
            except RedisError as error:
                # RQ's own dequeue below waits for Redis to come back; an error here would end its loop.
                log.warning("redis unavailable to the pump: %s", error)
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)


class LoopEnded(Exception):
    """RQ's work loop returned, though nobody asked the worker to stop: it logged an error and quit."""


class QueueServices(Protocol):
    """What the housekeeper uses of its worker's services (the outbound worker has its own: outbound/)."""

    redis: Redis
    queue: Queue


class Housekeeper(threading.Thread):
    """Pumps the inbox into jobs, renews this worker's leases, reaps abandoned jobs and enqueues due retries.

    RQ's own scheduler runs in a forked process and holds its lock for a minute after its worker
    dies; doing its one step here, under a lock of one second, keeps retries moving within seconds
    whichever worker dies (and works with the in-process Redis of the embedded mode).
    """

    idle_seconds = PUMP_IDLE_SECONDS  # between turns with nothing moved

    def __init__(self, worker: LeasedWorker, services: QueueServices, pump: Pump | None) -> None:
        super().__init__(name="housekeeper", daemon=True)
        self.worker = worker
        self.services = services
        self.pump = pump
        self.stopping = threading.Event()
        self._reap_lock = f"wahooks:{services.queue.name}:reaper-lock"
        self._scheduler = RQScheduler([services.queue], connection=services.redis)

    def run(self) -> None:
        next_renew = next_reap = 0.0
        while not self.stopping.is_set():
            try:
                # A busy worker pumps for itself when it is done; pumping now would make small batches.
                moved = 0 if self.worker.executions or self.pump is None else self.pump.move()
                now = time.monotonic()
                if now >= next_renew:
                    self.renew_leases()
                    next_renew = now + RENEW_EVERY_SECONDS
                if now >= next_reap:
                    self.reap()
                    next_reap = now + REAP_EVERY_SECONDS
            except RedisError as error:
                log.warning("redis unavailable to the housekeeper: %s", error)
                moved = 0
                self.stopping.wait(1.0)
            except Exception:  # the housekeeper must outlive any one bad turn, or the inbox stops moving
                log.exception("housekeeping failed; trying again")
                moved = 0
                self.stopping.wait(1.0)
            if not moved:
                self.stopping.wait(self.idle_seconds)

    def renew_leases(self) -> None:
        executions = list(self.worker.executions.values())
        if not executions:
            return
        registry = StartedJobRegistry(self.services.queue.name, connection=self.services.redis)
        with self.services.redis.pipeline() as pipe:
            # SimpleWorker sends no heartbeat while a job runs: keep the worker itself registered too.
            self.worker.heartbeat(pipeline=pipe)
            for execution in executions:
                execution.heartbeat(registry, LEASE_SECONDS, pipe)
            pipe.execute()

    def reap(self) -> None:
        """Hand expired leases back to RQ and enqueue due retries (one reaper at a time across workers)."""
        if not self.services.redis.set(self._reap_lock, "1", nx=True, px=int(REAP_EVERY_SECONDS * 1000)):
            return
        queue = self.services.queue
        queue.started_job_registry.cleanup()
        StuckJobs(queue.key, self.services.redis).cleanup(self.worker, queue)
        self._scheduler.prepare_registries([queue.name])
        self._scheduler.enqueue_scheduled_jobs()


class StuckJobs(IntermediateQueue):
    """RQ's intermediate queue, its stuck jobs retried after STUCK_SECONDS rather than a minute.

    RQ dequeues a job by moving it to this list, then registers it as started in a second round trip.
    A Redis failover between the two (tests/test_sentinel.py met it) leaves the job in no registry, its
    bodies waiting for RQ's minute; a job registered late runs twice, which writing tolerates.
    """

    def should_be_cleaned_up(self, job_id: str) -> bool:
        first_seen = self.get_first_seen(job_id)
        return first_seen is not None and (now() - first_seen).total_seconds() > STUCK_SECONDS


def worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


def run(services: Services, burst: bool = False) -> bool:
    """Run a worker until stopped (or, with burst, until the queue and inbox are empty).

    RQ lets a Redis error escape its work loop when Redis vanishes mid-job, and quits its loop on any other
    error it does not expect; rather than exit, start a fresh worker. The job in flight loses its lease and
    is reaped and retried like any abandoned job.
    With WAHOOKS_METRICS_PORT set, the process's metrics exporter listens there first.
    """
    services.db.check_schema()
    port = metrics_port()
    if port is not None:
        metrics.serve(port)
    while True:
        try:
            return _work_once(services, burst)
        except (RedisError, LoopEnded) as error:
            log.error("the worker stopped, starting afresh in %.0f s: %s", RESTART_DELAY_SECONDS, error)
            time.sleep(RESTART_DELAY_SECONDS)


def _work_once(services: Services, burst: bool) -> bool:
    worker = LeasedWorker(
        [services.queue], connection=services.redis, name=worker_name(), log_job_description=False
    )
    worker.pump = Pump(services.redis, services.queue, max_bodies=services.batch_max_bodies)
    keeper = Housekeeper(worker, services, worker.pump)
    if burst:
        # RQ stops a burst worker at the first empty dequeue: make every waiting body a job first.
        worker.pump.drain()
    worked = work_beside(worker, keeper, burst)
    if not burst and not worker.stop_requested:
        raise LoopEnded("RQ's work loop quit on an error it logged")
    return worked


def work_beside(worker: LeasedWorker, keeper: Housekeeper, burst: bool) -> bool:
    """Run the worker with its housekeeper beside it (the outbound worker does too: outbound/runner.py)."""
    keeper.start()
    try:
        # RQ sets its own loggers' level; keep the one logs.configure() chose.
        return worker.work(burst=burst, logging_level=logging.getLevelName(logging.getLogger().level))
    finally:
        keeper.stopping.set()
        keeper.join(timeout=5)
