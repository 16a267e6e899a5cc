"""Meta's X-Hub-Signature-256: HMAC-SHA256 of the raw body, keyed with the app secret."""

import hashlib
import hmac
import re
from enum import Enum

PREFIX = "sha256="
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class Verdict(Enum):
    VALID = "valid"
    MISSING = "missing"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"


def sign(secret: str, body: bytes) -> str:
    """The header value Meta would send for this body."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, secrets: tuple[str, ...]) -> Verdict:
    """Check the header against every configured secret (several while a secret is rotated)."""
    if not header:
        return Verdict.MISSING
    if not header.startswith(PREFIX) or not _HEX64.fullmatch(header, len(PREFIX)):
        return Verdict.MALFORMED
    given = bytes.fromhex(header[len(PREFIX) :])
    for secret in secrets:
        if hmac.compare_digest(hmac.digest(secret.encode(), body, "sha256"), given):
            return Verdict.VALID
    return Verdict.MISMATCH
