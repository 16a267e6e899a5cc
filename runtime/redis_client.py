"""Redis clients built from REDIS_URL, with timeouts suited to who uses them."""

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

# How long the web side waits for Redis to connect or to answer one command. A stalled Redis must
# become a 503 within a second (Meta redelivers later), and a request waits for at most one round
# trip's timeout (webhook/group_push.py). A healthy Redis answers the push in well under a millisecond.
WEB_TIMEOUT_SECONDS = 0.5


def web_client(url: str) -> Redis:
    """Fail fast: a dead or stalled Redis becomes a 503 within a second, never a hung request.

    One retry, and only for a broken connection (Redis restarted, an idle connection dropped), which
    fails at once; a timeout is never retried, so a stalled Redis costs one timeout, not two.
    """
    return Redis.from_url(
        url,
        socket_connect_timeout=WEB_TIMEOUT_SECONDS,
        socket_timeout=WEB_TIMEOUT_SECONDS,
        retry=Retry(
            ExponentialBackoff(cap=0.05, base=0.01), retries=1, supported_errors=(RedisConnectionError,)
        ),
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
