"""The Redis inbox: the web app's one-round-trip hand-off of a body, which workers turn into RQ jobs."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import cast

from redis import Redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from runtime.config import ReplicaWait

# Push each body unless an identical one is still waiting (KEYS: the inbox, then each body's waiting
# marker; ARGV: the marker's lifetime, then the bodies): however many bodies, one round trip.
_PUSH = """
local queued = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('LPUSH', KEYS[1], ARGV[i])
    queued[i - 1] = 1
  else
    -- A write all the same, of the marker's own expiry: WAIT waits for its connection's last write,
    -- and the body's first push (maybe on another connection, maybe never replicated) comes before
    -- this one in the replication stream. Redis 7.0 counts any command as the last write; Redis
    -- documents only writes.
    redis.call('PEXPIRE', KEYS[i], redis.call('PTTL', KEYS[i]))
    queued[i - 1] = 0
  end
end
return queued
"""
WAITING_TTL_SECONDS = 3600
JOB_PATH = "workers.jobs.process_bodies"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class TooFewReplicas(RedisError):
    """WAIT's timeout passed before enough replicas acknowledged a push: the bodies are on the primary
    only, and would be lost with it (the web answers 503, and Meta delivers them again)."""


@dataclass(frozen=True)
class InboxKeys:
    queue: str

    @property
    def inbox(self) -> str:
        return f"wahooks:{self.queue}:inbox"

    @property
    def pump_turn(self) -> str:
        """Rewritten by every move, watched by every pump (workers/pump.py).

        Pumps before 2026-12-06 took this key as a five-second lock (SET NX, then WATCH): a move now
        leaves it set for good, so during a rolling upgrade the older pumps can no longer take it, and one
        caught mid-move aborts, as a newer one does when an older one takes or frees it.
        """
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
        return self.push_many([body])[0]

    def push_many(self, bodies: list[bytes]) -> list[bool]:
        """Queue bodies in one round trip, in order; False for each whose identical twin already waits."""
        return [
            bool(flag)
            for flag in self._push(keys=self._push_keys(bodies), args=[WAITING_TTL_SECONDS, *bodies])
        ]

    def single_caller_push(self, wait: ReplicaWait | None = None) -> Callable[[list[bytes]], list[bool]]:
        """push_many on a connection of its own, for a caller that never pushes from two threads at once.

        It skips the connection pool and the client's and the script's wrappers, which cost the web
        process about as much CPU as the round trip's own syscalls (bench/README.md). The connection keeps
        the client's settings: address, timeouts, and its retry of a broken connection. With `wait`, a
        WAIT travels in the same round trip, and TooFewReplicas is raised when too few replicas
        acknowledged the push in time.
        """
        # Every connection class redis-py makes (TCP, TLS, unix socket) is an AbstractConnection.
        connection = cast(AbstractConnection, self.connection.connection_pool.make_connection())

        def evaluate(command: str, script: str, keys: list[str], bodies: list[bytes]) -> list[int]:
            # connect() first, not send_command's own connecting: a Sentinel-managed connection learns the
            # primary's address only in connect() (redis-py 8.2 would otherwise dial localhost:6379).
            connection.connect()
            connection.send_command(command, script, len(keys), *keys, WAITING_TTL_SECONDS, *bodies)
            return cast(list[int], connection.read_response())

        def evaluate_and_wait(
            wait: ReplicaWait, command: str, script: str, keys: list[str], bodies: list[bytes]
        ) -> list[int]:
            connection.connect()
            push = (command, script, len(keys), *keys, WAITING_TTL_SECONDS, *bodies)
            connection.send_packed_command(
                connection.pack_commands([push, ("WAIT", wait.replicas, wait.timeout_ms)])
            )
            try:
                flags = cast(list[int], connection.read_response())
            except ResponseError:  # Redis refused the push (NoScriptError, NOREPLICAS): WAIT's answer follows
                connection.read_response()
                raise
            acknowledged = cast(int, connection.read_response())
            if acknowledged < wait.replicas:
                raise TooFewReplicas(f"{acknowledged} of {wait.replicas} replicas acknowledged the push")
            return flags

        send = evaluate if wait is None else partial(evaluate_and_wait, wait)

        def trip(keys: list[str], bodies: list[bytes]) -> list[int]:
            try:
                return send("EVALSHA", str(self._push.sha), keys, bodies)
            except NoScriptError:  # a restarted Redis forgot the script: send it whole (EVAL caches it)
                return send("EVAL", _PUSH, keys, bodies)

        def push_many(bodies: list[bytes]) -> list[bool]:
            keys = self._push_keys(bodies)
            try:
                flags = connection.retry.call_with_retry(
                    lambda: trip(keys, bodies), lambda _: connection.disconnect()
                )
            except TooFewReplicas:  # both answers were read: the connection is in step
                raise
            except BaseException:
                connection.disconnect()  # never leave a reply unread for the next push to mistake for its own
                raise
            return [bool(flag) for flag in flags]

        return push_many

    def _push_keys(self, bodies: list[bytes]) -> list[str]:
        return [self.keys.inbox, *(self.keys.waiting(body_digest(body)) for body in bodies)]

    def done(self, digests: list[str]) -> None:
        """Forget that these bodies are waiting, so a later redelivery is processed again."""
        if digests:
            self.connection.delete(*(self.keys.waiting(d) for d in digests))

    def depth(self) -> int:
        return int(self.connection.llen(self.keys.inbox))

    def oldest(self) -> bytes | None:
        """The body that has waited longest in the inbox (the pump takes bodies oldest first)."""
        return cast(bytes | None, self.connection.lindex(self.keys.inbox, -1))

    def waited_seconds(self, body: bytes) -> float:
        """How long ago this body was pushed, read from its waiting marker (set with the push)."""
        remaining_ms = int(self.connection.pttl(self.keys.waiting(body_digest(body))))
        if remaining_ms < 0:  # the marker lapsed (or the body is done): it waited its whole lifetime
            return float(WAITING_TTL_SECONDS)
        return WAITING_TTL_SECONDS - remaining_ms / 1000
