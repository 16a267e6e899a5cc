"""What an outbound worker process holds: the database, Redis and its queue, the Graph API settings and
one HTTP session whose connection pool every Graph client of the process shares."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from redis import Redis
from rq import Queue

from models.db import Database
from outbound.config import GraphConfig, OutboundConfig
from outbound.graph import GraphClient, RetryPolicy, new_session
from outbound.tenants import TenantSettings
from runtime.redis_client import worker_client


@dataclass
class OutboundServices:
    db: Database
    redis: Redis
    queue: Queue
    graph: GraphConfig
    session: requests.Session = field(default_factory=new_session)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    tenants: TenantSettings = field(default_factory=TenantSettings)

    @classmethod
    def build(
        cls, config: OutboundConfig, redis: Redis | None = None, db: Database | None = None
    ) -> "OutboundServices":
        redis = redis if redis is not None else worker_client(config.redis_url)
        return cls(
            db or Database(config.database_url), redis, Queue(config.queue, connection=redis), config.graph
        )

    def client(self, token: str) -> GraphClient:
        return GraphClient(self.graph.graph_url, token, self.session, self.policy, self.sleep)


_installed: list[OutboundServices] = []  # the process's, once installed


def install(services: OutboundServices) -> None:
    _installed[:] = [services]


def current() -> OutboundServices:
    """The process's services: installed by the worker command or a test, else built from the environment."""
    if not _installed:
        install(OutboundServices.build(OutboundConfig.from_env()))
    return _installed[0]
