"""The outbound RQ job: one request (its id is the job's only argument), claimed, made and recorded.

What each kind does is a table (HANDLERS). A handler reads what its call needs, calling nothing (a failure
there leaves Meta unasked), and returns the call, which asks Meta and records the answer in one
transaction with the request's `done` (a send with its outbound message row). Failures of the call:
- Meta asks for a pause longer than a worker sleeps: the request waits, pending, until then (the sweeper
  enqueues it when due); the job ends without error;
- "not now" (5xx, a connection error, a corrupted download): back to pending and the job fails, for RQ to
  retry it with backoff (RETRY); after MAX_ATTEMPTS the request fails;
- permanent (Meta's permanent errors, an unusable answer, no token): the request fails with the reason
  and the job goes to the failed registry at once, without retries;
- a send whose outcome is unknown becomes `unknown`, never sent again (outbound/intents.py).
"""

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import NoReturn

from rq import Queue, Retry, get_current_job
from rq.queue import EnqueueData
from sqlalchemy import select

from models import WhatsAppMessage
from outbound import confirmation, intents, media, reconcile
from outbound.graph import (
    GraphError,
    GraphProtocolError,
    GraphUnavailable,
    OutcomeUnknown,
    PermanentGraphError,
    ThrottledError,
    TransientGraphError,
)
from outbound.intents import Claimed
from outbound.kinds import MARK_READ, MEDIA, ORDER_CONFIRMATION
from outbound.services import OutboundServices, current
from outbound.tokens import TokenError
from runtime.config import ConfigError
from runtime.logs import error_summary

log = logging.getLogger(__name__)

JOB_PATH = "outbound.jobs.perform"
RETRY = Retry(max=5, interval=[5, 15, 30, 60, 120])
JOB_TIMEOUT_SECONDS = 600
# Meta dismisses a typing indicator after 25 s; shown for an older message it would only mislead.
TYPING_MAX_AGE = timedelta(seconds=25)
RETRYABLE = (TransientGraphError, GraphUnavailable, media.MediaError)
PERMANENT = (
    PermanentGraphError,
    GraphProtocolError,
    TokenError,
    ConfigError,
    media.NoMedia,
    confirmation.NotConfirmable,
)


class OutboundFailed(Exception):
    """The request failed for good; its row's error says why (Meta's message, code and fbtrace_id)."""


class OutboundRetry(Exception):
    """The request failed for now and is pending again; RQ retries the job."""


def job_data(request_id: int) -> EnqueueData:
    """How every outbound job is enqueued: by the worker's hook, the sweeper and `wahooks outbound retry`."""
    return Queue.prepare_data(
        JOB_PATH,
        args=(request_id,),
        retry=RETRY,
        timeout=JOB_TIMEOUT_SECONDS,
        description=f"outbound request {request_id}",
    )


def perform(request_id: int) -> str:
    """The job. Returns the request's state, for RQ's result and the tests."""
    job = get_current_job()
    return run(current(), request_id, job.id if job else f"direct-{uuid.uuid4().hex}")


def run(svc: OutboundServices, request_id: int, job_id: str) -> str:
    """Claim the request, make its call, record the outcome; returns the state it is left in."""
    request = intents.claim(svc.db, request_id, job_id)
    if request is None:
        return "nothing to do"
    extra = {"job": job_id, "tenant": request.tenant_id, "event": f"{request.kind} {request.id}"}
    try:
        # Reading what the call needs calls nothing: whatever fails here, Meta has not been asked.
        call = HANDLERS[request.kind](svc, request, job_id)
    except PERMANENT as error:
        _failed(svc, request, job_id, error, extra)
    except Exception as error:
        _retry(svc, request, job_id, error, extra)
    try:
        call()
    except ThrottledError as error:
        intents.reschedule(svc.db, request, job_id, error.wait_seconds, str(error))
        log.warning("outbound request throttled: due again in %.0f s", error.wait_seconds, extra=extra)
        return intents.PENDING
    except OutcomeUnknown as error:
        intents.finish(svc.db, request, job_id, intents.UNKNOWN, str(error))
        log.error("outbound send's outcome unknown: not sent again; reconciled from statuses", extra=extra)
        return intents.DONE if reconcile.settle(svc.db, request.id) else intents.UNKNOWN
    except RETRYABLE as error:
        _retry(svc, request, job_id, error, extra)
    except PERMANENT as error:
        _failed(svc, request, job_id, error, extra)
    return intents.DONE


def _retry(
    svc: OutboundServices, request: Claimed, job_id: str, error: Exception, extra: dict[str, object]
) -> NoReturn:
    """Back to pending, and the job fails for RQ to retry it; after MAX_ATTEMPTS, failed for good."""
    if request.attempts >= intents.MAX_ATTEMPTS:
        _failed(svc, request, job_id, error, extra)
    intents.finish(svc.db, request, job_id, intents.PENDING, str(error))
    log.warning("outbound request failed (%s), attempt %d", _summary(error), request.attempts, extra=extra)
    raise OutboundRetry(f"outbound request {request.id}: {_summary(error)}; its row has the whole error")


def _failed(
    svc: OutboundServices, request: Claimed, job_id: str, error: Exception, extra: dict[str, object]
) -> NoReturn:
    """Failed for good, and into the failed registry now, without RQ's retries (checked against rq 3.0:
    the worker reads the running job's retries_left when it fails)."""
    intents.finish(svc.db, request, job_id, intents.FAILED, str(error))
    log.error("outbound request failed for good (%s)", _summary(error), extra=extra)
    job = get_current_job()
    if job is not None:
        job.retries_left = 0
    raise OutboundFailed(f"outbound request {request.id}: {_summary(error)}; its row has the whole error")


def _summary(error: Exception) -> str:
    """The error without its text, which may quote a phone number (Meta's messages do): for logs and RQ."""
    return error.summary if isinstance(error, GraphError) else error_summary(error)


Call = Callable[[], None]


def mark_read(svc: OutboundServices, request: Claimed, job_id: str) -> Call:
    """Mark the message read (blue ticks), with a typing indicator when the tenant wants one."""
    tenant = svc.tenants.get(svc.db, request.tenant_id)
    client = svc.client(svc.graph.tokens.for_tenant(tenant.tenant_id, tenant.token_encrypted))
    body: dict[str, object] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": request.subject_wamid,
    }
    if tenant.typing_indicator and _received_within(svc, request.subject_wamid, TYPING_MAX_AGE):
        body["typing_indicator"] = {"type": "text"}

    def call() -> None:
        answer = client.post(f"{tenant.phone_number_id}/messages", body, repeatable=True)
        if answer.get("success") is not True:
            raise GraphProtocolError("marking read: Meta's answer has no success: true")
        with svc.db.session() as session:
            intents.done(session, request, job_id)

    return call


def confirm_order(svc: OutboundServices, request: Claimed, job_id: str) -> Call:
    """Send the order's confirmation, once; keep the message Meta made of it."""
    tenant = svc.tenants.get(svc.db, request.tenant_id)
    with svc.db.session() as session:
        order = confirmation.load_order(session, request.subject_wamid)
    if order is None:
        raise confirmation.NotConfirmable(f"order {request.subject_wamid} is not stored")
    to = confirmation.recipient(order)
    if to is None:
        raise confirmation.NotConfirmable(f"order {request.subject_wamid} has no phone number or user id")
    client = svc.client(svc.graph.tokens.for_tenant(tenant.tenant_id, tenant.token_encrypted))
    message_type, content, text = confirmation.compose(order, tenant.wording)
    callback = reconcile.callback_data(request.id)
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **to,
        "type": message_type,
        **content,
        "context": {"message_id": order.wamid},
        "biz_opaque_callback_data": callback,
    }

    def call() -> None:
        answer = client.post(f"{tenant.phone_number_id}/messages", body, repeatable=False)
        wamid = confirmation.sent_wamid(answer)
        with svc.db.session() as session:
            sent_at = intents.utcnow()
            confirmation.record_sent(
                session, tenant.tenant_id, wamid, order, message_type, text, sent_at, answer, callback
            )
            intents.done(session, request, job_id, wamid)

    return call


def download_media(svc: OutboundServices, request: Claimed, job_id: str) -> Call:
    """Fetch the message's media into WAHOOKS_MEDIA_DIR/<tenant>/, checked, and record where it is."""
    tenant = svc.tenants.get(svc.db, request.tenant_id)
    with svc.db.session() as session:
        found = media.subject(session, request.subject_wamid)
    client = svc.client(svc.graph.tokens.for_tenant(tenant.tenant_id, tenant.token_encrypted))
    folder = svc.graph.require_media_dir() / str(tenant.tenant_id)

    def call() -> None:
        info, path = media.fetch(
            client, found.media_id, found.phone_number_id, folder, svc.graph.media_max_bytes
        )
        with svc.db.session() as session:
            media.record(session, found.message_id, info, path)
            intents.done(session, request, job_id)

    return call


def _received_within(svc: OutboundServices, wamid: str, age: timedelta) -> bool:
    with svc.db.session() as session:
        received = session.scalar(select(WhatsAppMessage.message_at).where(WhatsAppMessage.wamid == wamid))
    if received is None:
        return False
    # SQLite hands timestamps back naive, written in UTC.
    return intents.utcnow() - (received if received.tzinfo else received.replace(tzinfo=UTC)) <= age


HANDLERS: dict[str, Callable[[OutboundServices, Claimed, str], Call]] = {
    MARK_READ: mark_read,
    ORDER_CONFIRMATION: confirm_order,
    MEDIA: download_media,
}
