"""Settling a send whose outcome is unknown, from what Meta tells afterwards.

Every send carries `biz_opaque_callback_data` naming its request; Meta echoes it on the message's sent,
delivered, read and failed statuses, and the workers keep it on the message's row. A request
left `unknown` (its worker died between handing the send to Meta and recording Meta's answer) is done,
with that message's wamid, as soon as such a status is stored; until then it stays unknown and is never
sent again. The outbound worker's sweeper looks for them (outbound/runner.py).
"""

from datetime import timedelta

from sqlalchemy import func, select, update

from models import OUTBOUND, WhatsAppMessage
from models.db import Database
from outbound import intents

CALLBACK_PREFIX = "wahooks-outbound-"


def callback_data(request_id: int) -> str:
    return f"{CALLBACK_PREFIX}{request_id}"


def settle(db: Database, request_id: int) -> str | None:
    """The wamid of the message this unknown send became, recorded as done; None while none is known."""
    table, messages = intents.TABLE, WhatsAppMessage
    with db.session() as session:
        row = session.execute(
            select(table.c.tenant_id, table.c.subject_wamid).where(
                table.c.id == request_id, table.c.state == intents.UNKNOWN
            )
        ).first()
        if row is None:
            return None
        # A status of the message fills its row's biz_opaque_callback_data (workers/store.py).
        wamid = session.scalar(
            select(messages.wamid)
            .where(
                messages.tenant_id == row.tenant_id,
                messages.direction == OUTBOUND,
                messages.biz_opaque_callback_data == callback_data(request_id),
            )
            .limit(1)
        )
        if wamid is None:
            return None
        now = intents.utcnow()
        session.execute(
            update(table)
            .where(table.c.id == request_id, table.c.state == intents.UNKNOWN)
            .values(state=intents.DONE, result_wamid=wamid, error=None, done_at=now, updated_at=now)
        )
        # The statuses made the message's row; say what it answered.
        session.execute(
            update(messages)
            .where(messages.wamid == wamid)
            .values(context_wamid=func.coalesce(messages.context_wamid, row.subject_wamid))
        )
        return str(wamid)


def unknown_since(db: Database, window: timedelta, limit: int) -> list[int]:
    """Unknown requests recent enough that their statuses may still come."""
    table = intents.TABLE
    with db.session() as session:
        return list(
            session.scalars(
                select(table.c.id)
                .where(table.c.state == intents.UNKNOWN, table.c.claimed_at >= intents.utcnow() - window)
                .order_by(table.c.id)
                .limit(limit)
            )
        )
