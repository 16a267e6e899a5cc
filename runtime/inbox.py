"""The Redis inbox: the web app's one-round-trip hand-off of a body, which workers turn into RQ jobs."""

import hashlib
from dataclasses import dataclass

from redis import Redis

# Push a body unless an identical one is still waiting: one round trip on the request path.
_PUSH = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""
WAITING_TTL_SECONDS = 3600
JOB_PATH = "workers.jobs.process_bodies"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class InboxKeys:
    queue: str

    @property
    def inbox(self) -> str:
        return f"wahooks:{self.queue}:inbox"

    @property
    def pump_lock(self) -> str:
        return f"wahooks:{self.queue}:pump-lock"

    def waiting(self, digest: str) -> str:
        return f"wahooks:{self.queue}:waiting:{digest}"


class Inbox:
    def __init__(self, connection: Redis, queue: str) -> None:
        self.connection = connection
        self.keys = InboxKeys(queue)
        self._push = connection.register_script(_PUSH)

    def push(self, body: bytes) -> bool:
        """Queue a body; False when an identical body is already waiting."""
        digest = body_digest(body)
        keys = [self.keys.waiting(digest), self.keys.inbox]
        return bool(self._push(keys=keys, args=[body, WAITING_TTL_SECONDS]))

    def done(self, digests: list[str]) -> None:
        """Forget that these bodies are waiting, so a later redelivery is processed again."""
        if digests:
            self.connection.delete(*(self.keys.waiting(d) for d in digests))

    def depth(self) -> int:
        return int(self.connection.llen(self.keys.inbox))
