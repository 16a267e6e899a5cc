"""An outbound request's life: the intent is recorded before the call, the result after, and every attempt
reads what the one before it did.

    pending --claim--> sending --> done (Meta answered; a send's wamid kept)
                          |------> failed (a permanent error, or out of attempts)
                          |------> pending (Meta said "later": released, or rescheduled for when it said)
                          '------> unknown (a send that may have gone out: never sent again)

A claim is one conditional UPDATE, so two jobs for one request never both call Meta. The RQ job that
claimed it is named on the row. When an attempt dies mid-call (the worker killed, the job retried or its
lease lost), the next attempt finds the request still `sending`: a repeatable kind (marking read,
downloading media) is simply made again; a send is not: it becomes `unknown`, and is reconciled from the
status webhooks, which carry back the `biz_opaque_callback_data` the send was made with
(outbound/reconcile.py). So a send is made at most once, and exactly once unless a worker dies between
handing it to Meta and recording Meta's answer; repeatable kinds are done at least once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import ColumnElement, Insert, and_, or_, select, update
from sqlalchemy.orm import Session

from models import OutboundRequest
from models.db import Database, upsert
from outbound.kinds import KINDS

PENDING = "pending"
SENDING = "sending"
DONE = "done"
FAILED = "failed"
UNKNOWN = "unknown"
MAX_ATTEMPTS = 8
TABLE = OutboundRequest.__table__
ERROR_LENGTH = 2000
REPEATABLE = sorted(kind.name for kind in KINDS if kind.repeatable)


def utcnow() -> datetime:
    return datetime.now(UTC)


@cache
def insert_statement(dialect: str) -> Insert:
    """New requests; one per (kind, wamid) ever, so a redelivery never makes a second."""
    return (
        upsert(dialect, TABLE)
        .on_conflict_do_nothing(index_elements=["kind", "subject_wamid"])
        .returning(TABLE.c.id)
    )


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    kind: str
    subject_wamid: str
    attempts: int


def claim(db: Database, request_id: int, job_id: str, now: datetime | None = None) -> Claimed | None:
    """Take the request for this attempt, or None when there is nothing for it to do (one transaction).

    A request still `sending` under this same job id was left by an attempt of this job that died: a
    repeatable kind is taken again, a send becomes `unknown`.
    """
    now = now or utcnow()
    due = or_(TABLE.c.not_before.is_(None), TABLE.c.not_before <= now)
    left_by_this_job = and_(TABLE.c.state == SENDING, TABLE.c.claimed_by == job_id)
    takeable = or_(and_(TABLE.c.state == PENDING, due), and_(left_by_this_job, TABLE.c.kind.in_(REPEATABLE)))
    with db.session() as session:
        taken = session.execute(
            update(TABLE)
            .where(TABLE.c.id == request_id, takeable)
            .values(
                state=SENDING,
                claimed_by=job_id,
                claimed_at=now,
                attempts=TABLE.c.attempts + 1,
                not_before=None,
                updated_at=now,
            )
            .returning(TABLE.c.id, TABLE.c.tenant_id, TABLE.c.kind, TABLE.c.subject_wamid, TABLE.c.attempts)
        ).first()
        if taken is None:
            _transition(
                session,
                request_id,
                and_(left_by_this_job, TABLE.c.kind.not_in(REPEATABLE)),
                UNKNOWN,
                "the attempt that sent it died before Meta's answer was recorded: not sent again",
                now,
            )
    return Claimed(*taken) if taken is not None else None


def _transition(
    session: Session,
    request_id: int,
    condition: ColumnElement[bool],
    state: str,
    error: str | None,
    now: datetime,
) -> bool:
    result = session.execute(
        update(TABLE)
        .where(TABLE.c.id == request_id, condition)
        .values(state=state, error=error[:ERROR_LENGTH] if error else None, updated_at=now)
        .returning(TABLE.c.id)
    )
    return result.first() is not None


def _mine(job_id: str) -> ColumnElement[bool]:
    return and_(TABLE.c.state == SENDING, TABLE.c.claimed_by == job_id)


def done(session: Session, request: Claimed, job_id: str, result_wamid: str | None = None) -> bool:
    """Record success in the caller's transaction (a send records its outbound message with it)."""
    now = utcnow()
    result = session.execute(
        update(TABLE)
        .where(TABLE.c.id == request.id, _mine(job_id))
        .values(state=DONE, result_wamid=result_wamid, error=None, done_at=now, updated_at=now)
        .returning(TABLE.c.id)
    )
    return result.first() is not None


def finish(db: Database, request: Claimed, job_id: str, state: str, error: str | None = None) -> None:
    """End this attempt: failed, unknown, or released back to pending for a retry."""
    with db.session() as session:
        _transition(session, request.id, _mine(job_id), state, error, utcnow())


def reschedule(db: Database, request: Claimed, job_id: str, wait_seconds: float, error: str) -> None:
    """Meta asked for a pause longer than a worker should sleep: pending again, due after it."""
    now = utcnow()
    with db.session() as session:
        session.execute(
            update(TABLE)
            .where(TABLE.c.id == request.id, _mine(job_id))
            .values(
                state=PENDING,
                not_before=now + timedelta(seconds=wait_seconds),
                enqueued_at=None,
                error=error[:ERROR_LENGTH],
                updated_at=now,
            )
        )


def mark_enqueued(db: Database, request_ids: list[int], now: datetime | None = None) -> None:
    if request_ids:
        with db.session() as session:
            session.execute(
                update(TABLE).where(TABLE.c.id.in_(request_ids)).values(enqueued_at=now or utcnow())
            )


def due_for_enqueue(
    db: Database, stale_after: timedelta, limit: int, now: datetime | None = None
) -> list[int]:
    """Pending requests no job is known to hold: never enqueued (the worker died before it could), due
    again after a pause Meta asked for, or enqueued long ago (the job was lost)."""
    now = now or utcnow()
    with db.session() as session:
        return list(
            session.scalars(
                select(TABLE.c.id)
                .where(
                    TABLE.c.state == PENDING,
                    or_(TABLE.c.not_before.is_(None), TABLE.c.not_before <= now),
                    or_(TABLE.c.enqueued_at.is_(None), TABLE.c.enqueued_at <= now - stale_after),
                )
                .order_by(TABLE.c.id)
                .limit(limit)
            )
        )


def abandoned(
    db: Database, lease: timedelta, limit: int, now: datetime | None = None
) -> list[tuple[int, str]]:
    """Requests left `sending` longer than any attempt lasts: (id, kind)."""
    now = now or utcnow()
    with db.session() as session:
        rows = session.execute(
            select(TABLE.c.id, TABLE.c.kind)
            .where(TABLE.c.state == SENDING, TABLE.c.claimed_at <= now - lease)
            .order_by(TABLE.c.id)
            .limit(limit)
        )
        return [(request_id, kind) for request_id, kind in rows]


def settle_abandoned(
    db: Database, request_id: int, repeatable: bool, lease: timedelta, now: datetime | None = None
) -> None:
    """An attempt that outlived its lease died: a repeatable request is pending again, a send unknown."""
    now = now or utcnow()
    stale = and_(TABLE.c.state == SENDING, TABLE.c.claimed_at <= now - lease)
    with db.session() as session:
        if repeatable:
            session.execute(
                update(TABLE)
                .where(TABLE.c.id == request_id, stale)
                .values(state=PENDING, enqueued_at=None, updated_at=now)
            )
        else:
            _transition(
                session,
                request_id,
                stale,
                UNKNOWN,
                "its attempt was lost before Meta's answer was recorded: not sent again",
                now,
            )


def resend(db: Database, request_ids: list[int]) -> list[int]:
    """An operator's decision: put failed or unknown requests back to pending (`wahooks outbound retry`)."""
    now = utcnow()
    with db.session() as session:
        result = session.execute(
            update(TABLE)
            .where(TABLE.c.id.in_(request_ids), TABLE.c.state.in_([FAILED, UNKNOWN]))
            .values(state=PENDING, enqueued_at=None, not_before=None, claimed_by=None, updated_at=now)
            .returning(TABLE.c.id)
        )
        return sorted(result.scalars())
