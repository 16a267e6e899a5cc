"""Which tenant a business phone number belongs to, creating the single-tenant default on first use."""

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Tenant, WhatsAppBusinessSettings

log = logging.getLogger(__name__)
# How long a worker trusts what it learnt of a number: a new or deactivated tenant takes effect within it.
REMEMBER_SECONDS = 10.0


@dataclass(frozen=True)
class _Known:
    tenant_id: int | None  # None: unknown or inactive
    exists: bool
    until: float


_UNKNOWN = _Known(None, False, 0.0)


class TenantDirectory:
    """Phone number id -> tenant, remembered for a few seconds: every body asks, tenants rarely change."""

    def __init__(
        self,
        default_phone_number_id: str | None = None,
        default_name: str = "default",
        remember_seconds: float = REMEMBER_SECONDS,
    ) -> None:
        self.default_phone_number_id = default_phone_number_id
        self.default_name = default_name
        self.remember_seconds = remember_seconds
        self._known: dict[str, _Known] = {}

    def resolve(self, session: Session, phone_number_ids: set[str]) -> dict[str, int]:
        """Map each phone number id to its active tenant; unknown and inactive numbers are left out."""
        now = time.monotonic()
        stale = {p for p in phone_number_ids if self._known.get(p, _UNKNOWN).until <= now}
        if stale:
            rows = self._lookup(session, stale)
            for pnid in stale:
                tenant_id, active = rows.get(pnid, (None, False))
                self._known[pnid] = _Known(
                    tenant_id if active else None, pnid in rows, now + self.remember_seconds
                )
        found = {p: self._known[p].tenant_id for p in phone_number_ids}
        default = self.default_phone_number_id
        if default in phone_number_ids and not self._known[default].exists:
            # Not remembered: the transaction creating it may yet roll back.
            found[default] = self._create_default(session, default)
        return {pnid: tenant_id for pnid, tenant_id in found.items() if tenant_id is not None}

    def _lookup(self, session: Session, phone_number_ids: set[str]) -> dict[str, tuple[int, bool]]:
        settings = WhatsAppBusinessSettings
        rows = session.execute(
            select(settings.phone_number_id, settings.tenant_id, settings.is_active).where(
                settings.phone_number_id.in_(phone_number_ids)
            )
        )
        return {pnid: (tenant_id, active) for pnid, tenant_id, active in rows}

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
