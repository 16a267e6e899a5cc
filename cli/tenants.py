"""`wahooks tenants add|list`: the businesses this service stores events for."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Tenant, WhatsAppBusinessSettings
from models.db import Database


class TenantError(Exception):
    pass


@dataclass(frozen=True)
class NewTenant:
    name: str
    phone_number_id: str
    waba_id: str | None = None
    display_phone_number: str | None = None


def add(db: Database, new: NewTenant) -> int:
    try:
        with db.session() as session:
            tenant = Tenant(name=new.name)
            session.add(tenant)
            session.flush()
            session.add(
                WhatsAppBusinessSettings(
                    tenant_id=tenant.id,
                    phone_number_id=new.phone_number_id,
                    waba_id=new.waba_id,
                    display_phone_number=new.display_phone_number,
                )
            )
            session.flush()
            return tenant.id
    except IntegrityError:
        raise TenantError(f"phone number id {new.phone_number_id} already belongs to a tenant") from None


def listing(db: Database) -> list[tuple[int, str, str, str | None, str | None, bool]]:
    settings = WhatsAppBusinessSettings
    with db.session() as session:
        rows = session.execute(
            select(
                Tenant.id,
                Tenant.name,
                settings.phone_number_id,
                settings.waba_id,
                settings.display_phone_number,
                settings.is_active,
            )
            .join(settings, settings.tenant_id == Tenant.id)
            .order_by(Tenant.id)
        ).all()
    return list(rows)
