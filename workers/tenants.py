"""Which tenant a business phone number belongs to, creating the single-tenant default on first use."""

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Tenant, WhatsAppBusinessSettings
from models.db import Database

log = logging.getLogger(__name__)
# How long a worker trusts what it learnt of a number: a new or deactivated tenant takes effect within it.
REMEMBER_SECONDS = 10.0


@dataclass(frozen=True)
class _Known:
    tenant_id: int | None  # None: unknown or inactive
    until: float


class TenantDirectory:
    """Phone number id -> tenant, remembered for a few seconds: every batch asks, tenants rarely change."""

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
        self._known_wabas: dict[str, _Known] = {}

    def resolve(self, db: Database, phone_number_ids: set[str]) -> dict[str, int]:
        """Map each phone number id to its active tenant; unknown and inactive numbers are left out.

        Looks up (and creates the default tenant) in transactions of its own, committed before the caller
        writes anything, so what it remembers always exists.
        """
        now = time.monotonic()
        stale = {p for p in phone_number_ids if p not in self._known or self._known[p].until <= now}
        if stale:
            found = self._lookup(db, stale)
            default = self.default_phone_number_id
            if default in stale and default not in found:
                found[default] = (self._create_default(db, default), True)
            until = time.monotonic() + self.remember_seconds
            for pnid in stale:
                tenant_id, active = found.get(pnid, (None, False))
                self._known[pnid] = _Known(tenant_id if active else None, until)
        resolved = {p: self._known[p].tenant_id for p in phone_number_ids}
        return {pnid: tenant_id for pnid, tenant_id in resolved.items() if tenant_id is not None}

    def resolve_wabas(self, db: Database, waba_ids: set[str]) -> dict[str, int]:
        """Map each WABA id to the one active tenant whose settings name it; a WABA with none or several
        tenants is left out (its account events are kept without a tenant). Remembered like numbers."""
        now = time.monotonic()
        stale = {w for w in waba_ids if w not in self._known_wabas or self._known_wabas[w].until <= now}
        if stale:
            settings = WhatsAppBusinessSettings
            with db.session() as session:
                rows = session.execute(
                    select(settings.waba_id, settings.tenant_id).where(
                        settings.waba_id.in_(stale), settings.is_active
                    )
                ).all()
            tenants: dict[str | None, set[int]] = {}
            for waba_id, tenant_id in rows:
                tenants.setdefault(waba_id, set()).add(tenant_id)
            until = time.monotonic() + self.remember_seconds
            for waba_id in stale:
                found = tenants.get(waba_id, set())
                self._known_wabas[waba_id] = _Known(min(found) if len(found) == 1 else None, until)
        known = {w: self._known_wabas[w].tenant_id for w in waba_ids}
        return {waba_id: tenant_id for waba_id, tenant_id in known.items() if tenant_id is not None}

    def _lookup(self, db: Database, phone_number_ids: set[str]) -> dict[str, tuple[int, bool]]:
        settings = WhatsAppBusinessSettings
        with db.session() as session:
            rows = session.execute(
                select(settings.phone_number_id, settings.tenant_id, settings.is_active).where(
                    settings.phone_number_id.in_(phone_number_ids)
                )
            )
            return {pnid: (tenant_id, active) for pnid, tenant_id, active in rows}

    def _create_default(self, db: Database, phone_number_id: str) -> int:
        """Create the default tenant; if another worker wins the race, use theirs."""
        try:
            with db.session() as session:
                tenant = Tenant(name=self.default_name)
                session.add(tenant)
                session.flush()
                session.add(WhatsAppBusinessSettings(tenant_id=tenant.id, phone_number_id=phone_number_id))
        except IntegrityError:
            winner = self._lookup(db, {phone_number_id}).get(phone_number_id)
            assert winner is not None, "the unique phone_number_id conflicted, so its row exists"
            return winner[0]
        log.info(
            "created the default tenant", extra={"tenant": tenant.id, "phone_number_id": phone_number_id}
        )
        return tenant.id
