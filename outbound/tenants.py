"""A tenant's Graph API settings as outbound jobs need them, remembered for a few seconds: every job asks,
and a setting changed takes effect within REMEMBER_SECONDS, as for the processing workers' hook."""

import time
from dataclasses import dataclass, field

from sqlalchemy import select

from models import WhatsAppBusinessSettings
from models.db import Database
from outbound.confirmation import Wording

REMEMBER_SECONDS = 10.0


@dataclass(frozen=True)
class Tenant:
    tenant_id: int
    phone_number_id: str
    typing_indicator: bool
    wording: Wording
    token_encrypted: str | None = field(repr=False)


class TenantSettings:
    def __init__(self, remember_seconds: float = REMEMBER_SECONDS) -> None:
        self.remember_seconds = remember_seconds
        self._known: dict[int, tuple[Tenant, float]] = {}

    def get(self, db: Database, tenant_id: int) -> Tenant:
        known = self._known.get(tenant_id)
        now = time.monotonic()
        if known is not None and known[1] > now:
            return known[0]
        with db.session() as session:
            s = session.scalars(
                select(WhatsAppBusinessSettings).where(WhatsAppBusinessSettings.tenant_id == tenant_id)
            ).one()
            wording = Wording(s.order_confirmation_template, s.language_code, s.order_confirmation_text)
            tenant = Tenant(
                tenant_id, s.phone_number_id, s.typing_indicator, wording, s.access_token_encrypted
            )
        self._known[tenant_id] = (tenant, now + self.remember_seconds)
        return tenant
