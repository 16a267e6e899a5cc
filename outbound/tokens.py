"""Access tokens: WHATSAPP_ACCESS_TOKEN for the single-tenant default, or a tenant's own, kept encrypted.

A tenant's token is stored Fernet-encrypted (AES-128-CBC with an HMAC-SHA256, cryptography's recipe) with
the keys in WAHOOKS_TOKEN_KEYS, comma-separated: the first encrypts, every one decrypts, so a key is
rotated by putting a new one first, running `wahooks tenants rotate-tokens` (re-encrypts every token with
it), then dropping the old one. A decrypted token is registered with the log masker before it is used, so
no log line can show it; it is never in a job's data (jobs carry a request id) or an exception's text.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from runtime import logs
from runtime.config import ConfigError

KEYS_VARIABLE = "WAHOOKS_TOKEN_KEYS"
DEFAULT_TOKEN_VARIABLE = "WHATSAPP_ACCESS_TOKEN"


class TokenError(Exception):
    """A tenant has no usable token; the message says what to set."""


def token_box(env: Mapping[str, str] = os.environ) -> MultiFernet | None:
    """The keys of WAHOOKS_TOKEN_KEYS, or None when unset; a malformed key stops start-up, naming it."""
    keys = [k.strip() for k in env.get(KEYS_VARIABLE, "").split(",") if k.strip()]
    if not keys:
        return None
    fernets = []
    for number, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ConfigError(
                f"{KEYS_VARIABLE}: key {number} is not a Fernet key (32 url-safe base64-encoded bytes; make"
                " one with `python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                ".decode())'`)"
            ) from None
    return MultiFernet(fernets)


def new_key() -> str:
    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class Tokens:
    """Where a tenant's token comes from: its own (encrypted), else the deployment's default."""

    default: str | None = field(default=None, repr=False)
    box: MultiFernet | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Tokens":
        default = env.get(DEFAULT_TOKEN_VARIABLE, "").strip() or None
        logs.hide(default)
        return cls(default, token_box(env))

    def encrypt(self, token: str) -> str:
        if self.box is None:
            raise ConfigError(
                f"{KEYS_VARIABLE} is not set: a tenant's token is stored only encrypted with it"
            )
        return self.box.encrypt(token.encode()).decode()

    def rotate(self, encrypted: str) -> str:
        """The same token, encrypted with the first key."""
        if self.box is None:
            raise ConfigError(f"{KEYS_VARIABLE} is not set: there is no key to rotate to")
        try:
            return self.box.rotate(encrypted.encode()).decode()
        except InvalidToken:
            raise TokenError(f"a stored token cannot be decrypted with any key in {KEYS_VARIABLE}") from None

    def for_tenant(self, tenant_id: int, encrypted: str | None) -> str:
        """The token to call Meta with for this tenant; TokenError naming what to set when there is none."""
        if encrypted is None:
            if self.default is None:
                raise TokenError(
                    f"tenant {tenant_id} has no access token: set {DEFAULT_TOKEN_VARIABLE}, or give it one"
                    " with `wahooks tenants set-token`"
                )
            return self.default
        if self.box is None:
            raise TokenError(
                f"tenant {tenant_id}'s token is stored encrypted, and {KEYS_VARIABLE} is not set"
            )
        try:
            token = self.box.decrypt(encrypted.encode()).decode()
        except InvalidToken:
            raise TokenError(
                f"tenant {tenant_id}'s token cannot be decrypted with any key in {KEYS_VARIABLE}"
                " (was the key it was stored with removed?)"
            ) from None
        logs.hide(token)
        return token
