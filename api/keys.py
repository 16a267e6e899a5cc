"""Tenants' API keys: made, listed and revoked by `wahooks api-keys`, checked on every API request.

A key is shown once, when it is made. The database keeps its SHA-256 and its first characters (to tell keys
apart in a listing), never the key: someone who reads the table cannot call the API.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from cli import analytics
from cli.tenants import TenantError
from models import ApiKey, Tenant
from models.db import Database

# Recognisable in a leaked log or repository (secret scanners match on it), followed by 256 random bits.
KEY_PREFIX = "wahooks_"
KEY_BYTES = 32
SHOWN_CHARACTERS = len(KEY_PREFIX) + 6
MAX_KEY_LENGTH = 128  # a presented value longer than any key is refused without a lookup
MAX_NAME_LENGTH = 100  # api_keys.name
# last_used_at is written at most this often per key, so a busy client does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who an accepted key speaks for."""

    key_id: int
    tenant_id: int


@dataclass(frozen=True)
class NewKey:
    id: int
    tenant: str
    name: str
    key: str  # the only time the key exists outside the client's hands


@dataclass(frozen=True)
class KeyInfo:
    id: int
    tenant: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(db: Database, tenant: str, name: str) -> NewKey:
    """A new key for the tenant whose phone number id or name is `tenant`."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise TenantError(f"a key's name must be 1 to {MAX_NAME_LENGTH} characters")
    (owner,) = analytics.select_tenants(db, tenant)
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    with db.session() as session:
        row = ApiKey(tenant_id=owner.id, name=name, prefix=key[:SHOWN_CHARACTERS], key_hash=hash_key(key))
        session.add(row)
        session.flush()
        return NewKey(row.id, owner.name, name, key)


def listing(db: Database, tenant: str | None = None) -> list[KeyInfo]:
    """Every key (of one tenant, if given), oldest first, revoked ones included."""
    wanted = [t.id for t in analytics.select_tenants(db, tenant)] if tenant else None
    query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.id)
    if wanted is not None:
        query = query.where(ApiKey.tenant_id.in_(wanted))
    with db.session() as session:
        return [
            KeyInfo(k.id, owner, k.name, k.prefix, k.created_at, k.last_used_at, k.revoked_at)
            for k, owner in session.execute(query)
        ]


def revoke(db: Database, key_id: int) -> KeyInfo:
    """Refuse the key from now on (a request already past authentication finishes). Revoking twice is
    harmless: the first revocation time stays."""
    with db.session() as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    found = [k for k in listing(db) if k.id == key_id]
    if not found:
        raise TenantError(f"no API key has the id {key_id}: see `wahooks api-keys list`")
    return found[0]


def authenticate(db: Database, presented: str) -> Principal | None:
    """The tenant a presented key speaks for, or None for a key that is unknown or revoked.

    Looked up by its hash: the timing tells nothing about any key, and a database dump opens no door.
    """
    if not presented.startswith(KEY_PREFIX) or len(presented) > MAX_KEY_LENGTH:
        return None
    now = datetime.now(UTC)
    with db.session() as session:
        found = session.execute(
            select(ApiKey.id, ApiKey.tenant_id).where(
                ApiKey.key_hash == hash_key(presented), ApiKey.revoked_at.is_(None)
            )
        ).one_or_none()
        if found is None:
            return None
        key_id, tenant_id = found
        # Compared in the database: it changes the row only when the time kept is older than the resolution.
        stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION)
        session.execute(update(ApiKey).where(ApiKey.id == key_id, stale).values(last_used_at=now))
    return Principal(key_id, tenant_id)
