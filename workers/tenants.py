"""Which tenant a business phone number belongs to, creating the single-tenant default on first use."""

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Tenant, WhatsAppBusinessSettings

log = logging.getLogger(__name__)


class TenantDirectory:
    def __init__(self, default_phone_number_id: str | None = None, default_name: str = "default") -> None:
        self.default_phone_number_id = default_phone_number_id
        self.default_name = default_name

    def resolve(self, session: Session, phone_number_ids: set[str]) -> dict[str, int]:
        """Map each phone number id to its active tenant; unknown numbers are left out."""
        settings = WhatsAppBusinessSettings
        rows = session.execute(
            select(settings.phone_number_id, settings.tenant_id, settings.is_active).where(
                settings.phone_number_id.in_(phone_number_ids)
            )
        ).all()
        found = {pnid: (tenant_id, active) for pnid, tenant_id, active in rows}
        default = self.default_phone_number_id
        if default in phone_number_ids and default not in found:
            found[default] = (self._create_default(session, default), True)
        return {pnid: tenant_id for pnid, (tenant_id, active) in found.items() if active}

    def _create_default(self, session: Session, phone_number_id: str) -> int:
        """Create the default tenant; if another worker wins the race, use theirs."""
        try:
            with session.begin_nested():
                tenant = Tenant(name=self.default_name)
                session.add(tenant)
                session.flush()
                session.add(WhatsAppBusinessSettings(tenant_id=tenant.id, phone_number_id=phone_number_id))
                session.flush()
        except IntegrityError:
            winner = session.scalar(
                select(WhatsAppBusinessSettings.tenant_id).where(
                    WhatsAppBusinessSettings.phone_number_id == phone_number_id
                )
            )
            assert winner is not None, "the unique phone_number_id conflicted, so its row exists"
            return winner
        log.info(
            "created the default tenant", extra={"tenant": tenant.id, "phone_number_id": phone_number_id}
        )
        return tenant.id
