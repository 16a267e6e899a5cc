"""Meta's 2026 shapes beyond the corpus: an existing deployment back-filled by `wahooks reprocess --all`,
and two workers meeting one new customer at the same moment."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select, text

from cli.failures import reprocess
from models import WhatsAppContact, WhatsAppMessage
from tests import tables
from tests.conftest import PAYLOADS, Backend, Pipeline, load_expected, make_pipeline, seed
from workers.tenants import TenantDirectory

# Cases whose rows the first revision did not keep (it stored their messages and statuses only).
BACK_FILLED = (
    "sequences/contact_ids_linked",
    "sequences/pricing_earliest_status",
    "sequences/call_connect_terminate",
    "sequences/history_import",
    "sequences/marketing_opt_out",
    "account_events",
    "smb_app_state_sync",
)
# What the first revision left of those bodies: none of the new rows, no imported history, the message
# columns and counters it did not have at their defaults (it kept pricing_category, from the first status).
AS_THE_FIRST_REVISION_LEFT_IT = (
    "DELETE FROM whatsapp_account_events",
    "DELETE FROM whatsapp_calls",
    "DELETE FROM whatsapp_pricing_daily",
    "DELETE FROM whatsapp_messages WHERE source = 'history'",
    "UPDATE whatsapp_messages SET contact_id = NULL, pricing_model = NULL, pricing_type = NULL,"
    " priced_at = NULL, biz_opaque_callback_data = NULL",
    "DELETE FROM whatsapp_contacts",
    "UPDATE whatsapp_analytics SET calls_count = 0, call_seconds = 0",
)


def test_reprocess_all_back_fills_what_the_first_revision_did_not_keep(pipeline: Pipeline) -> None:
    db = pipeline.services.db
    pipeline.replay(*(path.read_bytes() for case in BACK_FILLED for path in tables.case_paths(case)))
    wanted = tables.expected_union([load_expected(f"{case}.json") for case in BACK_FILLED])
    tables.assert_same_rows(tables.snapshot(db), wanted)

    with db.session() as session:
        for statement in AS_THE_FIRST_REVISION_LEFT_IT:
            session.execute(text(statement))
    assert tables.rows_of(db, "contacts") == {} and tables.rows_of(db, "pricing") == {}

    directory = TenantDirectory()
    assert set(reprocess(db, directory, include_processed=True)) <= {"processed", "partial"}
    tables.assert_same_rows(tables.snapshot(db), wanted)
    reprocess(db, directory, include_processed=True)  # again: nothing doubles
    tables.assert_same_rows(tables.snapshot(db), wanted)


@pytest.fixture
def rival_stores_the_customer_first(postgres_backend: Backend) -> Iterator[list[str]]:
    """Just before the worker inserts its new customers, another transaction commits the same customer."""
    raced: list[str] = []

    def rival(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if raced or not statement.lstrip().startswith("INSERT INTO whatsapp_contacts"):
            return
        raced.append(statement)
        with postgres_backend.db.engine.connect() as other:
            other.execute(
                text(
                    "INSERT INTO whatsapp_contacts (tenant_id, wa_id, profile_name)"
                    " SELECT tenant_id, '15551230001', 'Rival' FROM whatsapp_business_settings"
                    " WHERE phone_number_id = '100000000000001'"
                )
            )
            other.commit()

    event.listen(postgres_backend.db.engine, "before_cursor_execute", rival)
    yield raced
    event.remove(postgres_backend.db.engine, "before_cursor_execute", rival)


def test_a_customer_another_worker_stored_first_is_one_row(
    rival_stores_the_customer_first: list[str], postgres_backend: Backend
) -> None:
    seed(postgres_backend.db)
    make_pipeline(postgres_backend).replay((PAYLOADS / "text_reply.json").read_bytes())
    assert rival_stores_the_customer_first, "the race must have been run"
    with postgres_backend.db.session() as session:
        contacts = session.execute(select(WhatsAppContact.id, WhatsAppContact.wa_id)).all()
        linked = session.scalar(select(func.count()).where(WhatsAppMessage.contact_id == contacts[0][0]))
    assert [wa_id for _, wa_id in contacts] == ["15551230001"]
    assert linked == 1
    assert set(tables.outcomes(postgres_backend.db).values()) == {"processed"}
