"""The worker's one hook into outbound work: in the transaction that stores a batch, record an outbound
request for each new inbound message (or order) whose tenant wants one; once that transaction commits,
put the requests on the outbound queue.

Only rows the transaction really inserted call for a request (the store's RETURNING says which), so a
redelivered message never does. The requests are rows of the same transaction: they exist exactly when
their message does. The enqueue after the commit is one Redis round trip, and may fail or never happen
(the worker dies between commit and enqueue): the outbound worker's sweeper enqueues every pending
request no job holds (outbound/runner.py), so no request is lost, and webhook intake never waits on the
Graph API or fails for it. With every outbound setting off, the hook costs a dictionary lookup a batch.
"""

import logging
import time
from collections.abc import Callable, Iterable

from rq import Queue
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from models import WhatsAppBusinessSettings
from models.db import dialect_of
from outbound import intents
from outbound.kinds import KINDS
from workers.events import Message
from workers.store import Inserted, Routed

log = logging.getLogger(__name__)
REMEMBER_SECONDS = 10.0  # a setting changed takes effect within this, as a new tenant does


class _Settings:
    """Tenant -> the kinds it has turned on, remembered for a few seconds: every batch asks."""

    def __init__(self, remember_seconds: float = REMEMBER_SECONDS) -> None:
        self.remember_seconds = remember_seconds
        self._known: dict[int, tuple[frozenset[str], float]] = {}

    def of(self, session: Session, tenant_ids: set[int]) -> dict[int, frozenset[str]]:
        now = time.monotonic()
        stale = {t for t in tenant_ids if t not in self._known or self._known[t][1] <= now}
        if stale:
            settings = WhatsAppBusinessSettings
            columns = [getattr(settings, kind.setting) for kind in KINDS]
            rows = session.execute(
                select(settings.tenant_id, *columns).where(settings.tenant_id.in_(sorted(stale)))
            )
            found = {
                tenant_id: frozenset(k.name for k, on in zip(KINDS, flags, strict=True) if on)
                for tenant_id, *flags in rows
            }
            until = now + self.remember_seconds
            for tenant_id in stale:
                self._known[tenant_id] = (found.get(tenant_id, frozenset()), until)
        return {t: self._known[t][0] for t in tenant_ids}


_settings = _Settings()
_queue: Queue | None = None


def install(queue: Queue | None) -> None:
    """The outbound queue this process enqueues to after a commit (the worker command installs it); what
    was remembered of tenants' settings is forgotten."""
    global _queue, _settings
    _queue = queue
    _settings = _Settings()


def plan(session: Session, routed: Routed, inserted: Inserted) -> None:
    """Record the requests that the rows this transaction inserted call for; enqueue them on commit."""
    if not inserted.new_inbound:
        return
    wanted = _settings.of(session, {tenant_id for tenant_id, _ in inserted.new_inbound})
    if not any(wanted.values()):
        return
    messages = {m.wamid: m for _, m in routed.messages}
    rows = [
        {"tenant_id": tenant_id, "kind": kind, "subject_wamid": wamid, "state": intents.PENDING}
        for tenant_id, wamid in sorted(inserted.new_inbound, key=lambda tw: tw[1])
        for kind in _kinds_for(messages[wamid], wanted[tenant_id])
    ]
    if not rows:
        return
    now = intents.utcnow()
    for row in rows:
        row["enqueued_at"] = now  # enqueued right after the commit; the sweeper takes any it never was
    ids = list(session.scalars(intents.insert_statement(dialect_of(session)), rows))
    if ids and _queue is not None:
        event.listen(session, "after_commit", _enqueue_once_committed(_queue, ids), once=True)


def _kinds_for(message: Message, enabled: frozenset[str]) -> Iterable[str]:
    return (kind.name for kind in KINDS if kind.name in enabled and kind.wanted(message))


def _enqueue_once_committed(queue: Queue, ids: list[int]) -> Callable[[Session], None]:
    def enqueue(_: Session) -> None:
        # Never let the outbound side fail a batch that is already committed: the sweeper catches up.
        try:
            enqueue_requests(queue, ids)
        except Exception as error:
            log.warning(
                "outbound requests not enqueued (%s); the outbound sweeper will", type(error).__name__
            )

    return enqueue


def enqueue_requests(queue: Queue, ids: list[int]) -> None:
    """One RQ job per request, all in one round trip; the job carries the request's id and nothing else."""
    from outbound.jobs import job_data  # the job module imports the Graph client: load it only to enqueue

    queue.enqueue_many([job_data(request_id) for request_id in ids])
