"""The web's metrics: webhook requests by outcome, and the queues' sizes read from Redis at scrape time.

The web server runs several processes (Procfile), so its counters use prometheus_client's multiprocess
mode: each process adds to its own memory-mapped file in PROMETHEUS_MULTIPROC_DIR (webhook/serve.py
makes a fresh one per start), and a scrape of any process sums them all. That mode is chosen when
prometheus_client is first imported, from the environment then. Labels are fixed outcomes and the
queue's name: never a phone number, a wamid or anything else a sender chooses.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from runtime.inbox import Inbox

REQUESTS = Counter(
    "wahooks_webhook_requests_total", "Signed POSTs to /webhook, by how they were answered", ["outcome"]
)
# One child per outcome, made once: the hot path adds to it without looking a label up.
ACCEPTED, DUPLICATE, BAD_SIGNATURE, BAD_BODY, TOO_LARGE, REDIS_UNAVAILABLE = (
    REQUESTS.labels(outcome)
    for outcome in ("accepted", "duplicate", "bad_signature", "bad_body", "too_large", "redis_unavailable")
)

GAUGES = (
    ("wahooks_inbox_depth", "Bodies waiting in the Redis inbox for a worker to make them jobs"),
    ("wahooks_queue_jobs", "Jobs waiting in the RQ queue"),
    ("wahooks_failed_jobs", "Jobs in the RQ failed registry"),
)


class QueueSizes(Collector):
    """The inbox's depth, the RQ queue's length and its failed registry's size, read when scraped."""

    def __init__(self, inbox: Inbox, queue: Queue) -> None:
        self.inbox = inbox
        self.queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            sizes = (self.inbox.depth(), self.queue.count, self.queue.failed_job_registry.count)
        except (RedisError, TimeoutError):  # the scrape still answers with the counters
            return
        for (name, documentation), size in zip(GAUGES, sizes, strict=True):
            gauge = GaugeMetricFamily(name, documentation, labels=["queue"])
            gauge.add_metric([self.queue.name], size)
            yield gauge


def scrape_registry(redis: Redis, queue: str, multiprocess_directory: str | None) -> CollectorRegistry:
    """What /metrics shows: every web process's counters (or this process's) and the queues' sizes."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_directory is not None:
        MultiProcessCollector(registry, path=multiprocess_directory)
    else:
        registry.register(REQUESTS)  # this process's own counters: one process, or the tests' client
    registry.register(QueueSizes(Inbox(redis, queue), Queue(queue, connection=redis)))
    return registry
