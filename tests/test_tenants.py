"""Routing to tenants, and the single-tenant default created on first use, also under a race."""

import threading

from sqlalchemy import func, select

from models import Tenant, WhatsAppBusinessSettings
from tests import tables
from tests.conftest import PAYLOADS, Backend, load_expected, make_pipeline, seed
from workers.tenants import TenantDirectory

DEFAULT_NUMBER = "100000000000001"


def _count(backend: Backend, model: type) -> int:
    with backend.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_default_tenant_is_created_on_first_use(backend: Backend) -> None:
    pipeline = make_pipeline(backend, default_phone_number_id=DEFAULT_NUMBER)
    pipeline.replay((PAYLOADS / "text_reply.json").read_bytes())
    with backend.db.session() as session:
        settings = session.scalars(select(WhatsAppBusinessSettings)).one()
        assert settings.phone_number_id == DEFAULT_NUMBER
        assert session.get(Tenant, settings.tenant_id).name == "default"
    tables.assert_state(backend.db, load_expected("text_reply.json"))


def test_other_numbers_are_not_given_the_default_tenant(backend: Backend) -> None:
    pipeline = make_pipeline(backend, default_phone_number_id=DEFAULT_NUMBER)
    pipeline.replay((PAYLOADS / "tenant_b.json").read_bytes())
    assert _count(backend, Tenant) == 0
    assert tables.messages(backend.db) == {}


def test_two_workers_creating_the_default_at_once_make_one_tenant(postgres_backend: Backend) -> None:
    directory = TenantDirectory(DEFAULT_NUMBER, "Solo")
    barrier = threading.Barrier(4)
    found: list[int] = []

    def resolve() -> None:
        barrier.wait()
        found.append(directory.resolve(postgres_backend.db, {DEFAULT_NUMBER})[DEFAULT_NUMBER])

    threads = [threading.Thread(target=resolve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    assert _count(postgres_backend, Tenant) == 1
    assert _count(postgres_backend, WhatsAppBusinessSettings) == 1


def test_inactive_tenant_receives_nothing(backend: Backend) -> None:
    seed(backend.db)
    with backend.db.session() as session:
        settings = session.scalars(
            select(WhatsAppBusinessSettings).where(WhatsAppBusinessSettings.phone_number_id == DEFAULT_NUMBER)
        ).one()
        settings.is_active = False
    make_pipeline(backend).replay((PAYLOADS / "text_reply.json").read_bytes())
    assert tables.messages(backend.db) == {}
    assert set(tables.outcomes(backend.db).values()) == {"ignored"}
