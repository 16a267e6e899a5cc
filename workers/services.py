"""The connections a worker process uses: one database engine, one Redis client, built once."""

from dataclasses import dataclass

from redis import Redis
from rq import Queue

from models.db import Database
from runtime.config import WorkerConfig
from runtime.inbox import Inbox
from runtime.redis_client import worker_client
from workers.tenants import TenantDirectory


@dataclass
class Services:
    db: Database
    redis: Redis
    queue: Queue
    inbox: Inbox
    tenants: TenantDirectory
    batch_max_bodies: int

    @classmethod
    def build(
        cls, config: WorkerConfig, redis: Redis | None = None, db: Database | None = None
    ) -> "Services":
        redis = redis if redis is not None else worker_client(config.redis_url)
        return cls(
            db=db or Database(config.database_url),
            redis=redis,
            queue=Queue(config.queue, connection=redis),
            inbox=Inbox(redis, config.queue),
            tenants=TenantDirectory(config.default_phone_number_id, config.default_business_name),
            batch_max_bodies=config.batch_max_bodies,
        )


_current: Services | None = None


def install(services: Services) -> None:
    """Make these the process's services (the worker command, the embedded mode and tests call it)."""
    global _current
    _current = services


def current() -> Services:
    """The installed services, or ones built from the environment on first use."""
    if _current is None:
        install(Services.build(WorkerConfig.from_env()))
    assert _current is not None
    return _current
