"""Redis clients built from REDIS_URL, with timeouts suited to who uses them.

REDIS_URL's Sentinel form (redis+sentinel://...) gives a client of the current primary: each new
connection asks the Sentinels where the primary is, so after a failover a client's next connection
reaches the promoted replica without a restart.
"""

from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel

from runtime.config import sentinel_address

# How long the web side waits for Redis to connect or to answer one command. A stalled Redis must
# become a 503 within a second (Meta redelivers later), and a request waits for at most one round
# trip's timeout (webhook/group_push.py). A healthy Redis answers the push in well under a millisecond.
WEB_TIMEOUT_SECONDS = 0.5


def web_client(url: str) -> Redis:
    """Fail fast: a dead or stalled Redis becomes a 503 within a second, never a hung request.

    One retry, and only for a broken connection (Redis restarted, an idle connection dropped), which
    fails at once; a timeout is never retried, so a stalled Redis costs one timeout, not two.
    """
    return _client(
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
    return _client(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=30.0,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        health_check_interval=30,
    )


def _client(url: str, **options: Any) -> Redis:
    """A client of the Redis REDIS_URL names, or of the primary its Sentinels name, with these options."""
    address = sentinel_address(url)
    if address is None:
        return Redis.from_url(url, **options)
    # The Sentinels get the same patience as the primary: asking them is part of every connect.
    timeouts = {key: options[key] for key in ("socket_connect_timeout", "socket_timeout")}
    sentinels = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts)
    primary: Redis = sentinels.master_for(
        address.primary, db=address.db, username=address.username, password=address.password, **options
    )
    return primary
