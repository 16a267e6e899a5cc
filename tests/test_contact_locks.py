"""Customers are written in a short transaction of their own (workers/batch.py, workers/contacts.py):
writing one never waits for a batch that is still writing messages pointing at it, and a merge or a
stale link never leaves a message pointing nowhere."""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from models import WhatsAppContact, WhatsAppMessage
from models.db import Database
from tests.conftest import PAYLOADS, TENANT_A, Backend, make_pipeline, seed
from workers import batch
from workers.contacts import ContactIds, ContactUpdates, store_contacts
from workers.events import Customer

EARLIER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def db(postgres_backend: Backend) -> Iterator[Database]:
    seed(postgres_backend.db)
    yield postgres_backend.db


def _tenant(db: Database) -> int:
    with db.session() as session:
        found = session.execute(
            text("SELECT tenant_id FROM whatsapp_business_settings WHERE phone_number_id = :number"),
            {"number": TENANT_A.phone_number_id},
        ).scalar_one()
        return int(found)


def _seen(db: Database, tenant: int, customer: Customer) -> int:
    """Store one sighting in a transaction of its own; the id of the row it came to."""
    with db.session() as session:
        found = store_contacts(session, ContactUpdates(seen=[(tenant, customer)])).of(tenant, customer)
    assert found is not None
    return found


def _insert_message(session: Session, tenant: int, contact_id: int) -> None:
    """What a batch's transaction does: a message pointing at its contact (FOR KEY SHARE on the row)."""
    row = {"tenant_id": tenant, "wamid": "wamid.LOCKS", "direction": "inbound", "status": "received"}
    session.execute(insert(WhatsAppMessage).values(**row, contact_id=contact_id))


def _contacts(db: Database) -> list[tuple[object, ...]]:
    """(id, wa_id, user_id, profile_name, last_seen_at) of every contact row."""
    c = WhatsAppContact
    columns = (c.id, c.wa_id, c.user_id, c.profile_name, c.last_seen_at)
    with db.session() as session:
        return [tuple(r) for r in session.execute(select(*columns).order_by(c.id))]


def _message_contact(db: Database) -> int | None:
    with db.session() as session:
        return session.scalar(
            select(WhatsAppMessage.contact_id).where(WhatsAppMessage.wamid == "wamid.LOCKS")
        )


def test_a_customer_is_written_while_a_batch_pointing_at_it_is_still_open(db: Database) -> None:
    tenant = _tenant(db)
    contact = _seen(db, tenant, Customer("15550000101", None, profile_name="Ann", seen_at=EARLIER))
    with db.session() as open_batch:
        _insert_message(open_batch, tenant, contact)
        with db.session() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))  # a wait fails the test instead of hanging
            later = Customer("15550000101", None, profile_name="Ann B.", seen_at=LATER)
            store_contacts(other, ContactUpdates(seen=[(tenant, later)]))
    assert _contacts(db) == [(contact, "15550000101", None, "Ann B.", LATER)]
    assert _message_contact(db) == contact


def _waiting_for_a_lock(db: Database) -> bool:
    with db.session() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_merge_repoints_a_message_committed_while_it_waited(db: Database) -> None:
    tenant = _tenant(db)
    by_phone = _seen(db, tenant, Customer("15550000102", None, seen_at=EARLIER))
    by_user = _seen(db, tenant, Customer(None, "US.102", seen_at=EARLIER))
    linking = Customer("15550000102", "US.102", seen_at=LATER)  # the two rows are one customer
    merged: list[int] = []

    def merge() -> None:
        merged.append(_seen(db, tenant, linking))

    with db.session() as open_batch:
        _insert_message(open_batch, tenant, by_user)  # the row the merge takes away (the newer one)
        merging = threading.Thread(target=merge)
        merging.start()
        _until(lambda: _waiting_for_a_lock(db), 10)  # the merge waits for this batch's commit
    merging.join(10)
    assert merged == [by_phone], "the merge finished, keeping the older row"
    assert _contacts(db) == [(by_phone, "15550000102", "US.102", None, LATER)]
    assert _message_contact(db) == by_phone


def test_a_batch_whose_contact_went_away_before_it_wrote_runs_again(
    postgres_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(postgres_backend.db)
    calls: list[ContactIds] = []

    def contacts_then_gone(session: Session, updates: ContactUpdates) -> ContactIds:
        ids = store_contacts(session, updates)
        if not calls:  # as if another worker merged the row away right after this transaction
            session.execute(text("DELETE FROM whatsapp_contacts"))
        calls.append(ids)
        return ids

    monkeypatch.setattr(batch, "store_contacts", contacts_then_gone)
    make_pipeline(postgres_backend).replay((PAYLOADS / "text_reply.json").read_bytes())
    assert len(calls) == 2, "the batch ran again after the foreign key refused its stale link"
    [(contact, wa_id, *_)] = _contacts(postgres_backend.db)
    with postgres_backend.db.session() as session:
        linked = session.scalar(select(WhatsAppMessage.contact_id))
    assert (wa_id, linked) == ("15551230001", contact)
