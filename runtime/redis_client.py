"""Redis clients built from REDIS_URL, with timeouts suited to who uses them."""

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def web_client(url: str) -> Redis:
    """Fail fast: a dead Redis must become a 503 in well under Meta's timeout, not a hung request."""
    return Redis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        health_check_interval=30,
    )


def worker_client(url: str) -> Redis:
    """Patient: a worker rides out a Redis restart rather than exiting."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=30.0,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        health_check_interval=30,
    )
