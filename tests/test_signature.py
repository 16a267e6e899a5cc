"""X-Hub-Signature-256: an HMAC-SHA256 of the raw body bytes, checked against every configured secret."""

import json
from collections.abc import Callable

import pytest

from webhook.signature import PREFIX, Verdict, sign, verify

SECRET = "app-secret-1"
OTHER_SECRET = "app-secret-2"
BODY = b'{"object":"whatsapp_business_account","entry":[{"id":"200000000000001","changes":[]}]}'
# As Meta sends it: compact, non-ASCII as \u escapes and slashes as \/ in the raw bytes.
META_BODY = (
    rb'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":'
    rb'[{"text":{"body":"K\u00e4se f\u00fcr \u00fcber 5\u20ac, https:\/\/example.com\/k\u00e4se"}}]}}]}]}'
)

# Known answers, computed with OpenSSL 3.0 outside Python: each body written byte for byte to a file with
# `printf '%s' '<body>' > body.json`, then `openssl dgst -sha256 -hmac '<secret>' body.json` (in a UTF-8
# shell, so a non-ASCII body or secret is its UTF-8 bytes, as `str.encode()` gives them here).
KNOWN_ANSWERS = [
    pytest.param(
        SECRET,
        rb'{"name":"J\u00fcrgen"}',
        "aa2b0f0d8d1c3c6d6ecd3ad6717be264e98af0f748b04e1fbaf86d13b77188d4",
        id="backslash-u escape",
    ),
    pytest.param(
        SECRET,
        rb'{"email":"j\u00fcrgen@example.com","url":"https:\/\/example.com\/k\u00e4se?a=1&b=@x"}',
        "4185c9c10421cf138267b2db41af0838fc5f66fe27f7a690af8ae36d863d432f",
        id="escaped slashes and @",
    ),
    pytest.param(
        SECRET,
        '{"name":"Jürgen","city":"Zürich","note":"€ 5 😀"}'.encode(),
        "c566383ca70bfdef7301d70d92ae98b23a46ee208b87a0caf07cbefaba891856",
        id="raw UTF-8",
    ),
    pytest.param(
        SECRET, META_BODY, "9d94d2a676ebf109976442bcd4e55a61cc8e4fed62234c38b103022479281792", id="Meta body"
    ),
    pytest.param(
        "geheim-äöü",
        rb'{"name":"J\u00fcrgen"}',
        "93e39cca880363f80509b12c56576dba699ec2a73f2d9189839f4730d8f2c241",
        id="UTF-8 secret",
    ),
]


@pytest.mark.parametrize(("secret", "body", "hex_digest"), KNOWN_ANSWERS)
def test_sign_gives_the_known_answer(secret: str, body: bytes, hex_digest: str) -> None:
    assert sign(secret, body) == PREFIX + hex_digest


@pytest.mark.parametrize(("secret", "body", "hex_digest"), KNOWN_ANSWERS)
def test_verify_accepts_the_known_answer_on_the_raw_bytes_only(
    secret: str, body: bytes, hex_digest: str
) -> None:
    assert verify(PREFIX + hex_digest, body, (secret,)) is Verdict.VALID
    reserialized = json.dumps(json.loads(body)).encode()
    assert reserialized != body
    assert verify(PREFIX + hex_digest, reserialized, (secret,)) is Verdict.MISMATCH


def test_the_signature_meta_sends_is_valid() -> None:
    assert verify(sign(SECRET, BODY), BODY, (SECRET,)) is Verdict.VALID


def test_sign_is_the_prefixed_lowercase_hex_hmac() -> None:
    header = sign(SECRET, BODY)
    assert header.startswith(PREFIX)
    assert len(header) == len(PREFIX) + 64
    assert header[len(PREFIX) :] == header[len(PREFIX) :].lower()


def test_a_signature_made_with_another_secret_is_a_mismatch() -> None:
    assert verify(sign("not-the-app-secret", BODY), BODY, (SECRET,)) is Verdict.MISMATCH


@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_no_header_is_missing(header: str | None) -> None:
    assert verify(header, BODY, (SECRET,)) is Verdict.MISSING


def _hex(header: str) -> str:
    return header[len(PREFIX) :]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(_hex(sign(SECRET, BODY)), id="no sha256= prefix"),
        pytest.param("sha1=" + _hex(sign(SECRET, BODY))[:40], id="sha1= prefix"),
        pytest.param("sha1=" + _hex(sign(SECRET, BODY)), id="sha1= prefix with a sha256 hex"),
        pytest.param("SHA256=" + _hex(sign(SECRET, BODY)), id="uppercase prefix"),
        pytest.param(sign(SECRET, BODY)[:-1], id="truncated hex"),
        pytest.param(sign(SECRET, BODY) + "0", id="one hex digit too many"),
        pytest.param(sign(SECRET, BODY)[:-1] + "g", id="not hex"),
        pytest.param(" " + sign(SECRET, BODY), id="leading space"),
        pytest.param(PREFIX, id="prefix only"),
    ],
)
def test_a_header_that_is_not_sha256_and_64_hex_digits_is_malformed(header: str) -> None:
    assert verify(header, BODY, (SECRET,)) is Verdict.MALFORMED


def test_uppercase_hex_is_accepted() -> None:
    header = PREFIX + _hex(sign(SECRET, BODY)).upper()
    assert verify(header, BODY, (SECRET,)) is Verdict.VALID


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_changing_one_byte_of_the_body_is_a_mismatch(position: int) -> None:
    header = sign(SECRET, BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01
    assert verify(header, bytes(tampered), (SECRET,)) is Verdict.MISMATCH


def test_a_trailing_newline_is_part_of_the_signed_bytes() -> None:
    assert verify(sign(SECRET, BODY), BODY + b"\n", (SECRET,)) is Verdict.MISMATCH


def test_a_non_ascii_body_is_verified_on_its_raw_escaped_bytes() -> None:
    assert b"\\u00e4" in META_BODY and b"\\/" in META_BODY
    assert verify(sign(SECRET, META_BODY), META_BODY, (SECRET,)) is Verdict.VALID


@pytest.mark.parametrize(
    "reserialize",
    [
        pytest.param(lambda data: json.dumps(data).encode(), id="json.dumps"),
        pytest.param(lambda data: json.dumps(data, ensure_ascii=False).encode(), id="ensure_ascii=False"),
        pytest.param(lambda data: json.dumps(data, separators=(",", ":")).encode(), id="compact separators"),
    ],
)
def test_a_reserialized_body_no_longer_matches_the_signature(reserialize: Callable[[object], bytes]) -> None:
    header = sign(SECRET, META_BODY)
    reserialized = reserialize(json.loads(META_BODY))
    assert json.loads(reserialized) == json.loads(META_BODY)
    assert reserialized != META_BODY
    assert verify(header, reserialized, (SECRET,)) is Verdict.MISMATCH


@pytest.mark.parametrize(
    "secrets",
    [(SECRET, OTHER_SECRET), (OTHER_SECRET, SECRET), ("old-1", "old-2", SECRET)],
    ids=["first of two", "second of two", "last of three"],
)
def test_while_a_secret_is_rotated_any_configured_secret_matches(secrets: tuple[str, ...]) -> None:
    assert verify(sign(SECRET, BODY), BODY, secrets) is Verdict.VALID


def test_a_signature_from_a_secret_no_longer_configured_is_a_mismatch() -> None:
    assert verify(sign("retired-secret", BODY), BODY, (SECRET, OTHER_SECRET)) is Verdict.MISMATCH


def test_no_configured_secret_matches_nothing() -> None:
    assert verify(sign(SECRET, BODY), BODY, ()) is Verdict.MISMATCH


def test_a_non_ascii_secret_signs_its_utf8_bytes() -> None:
    secret = "geheim-\u00e4\u00f6\u00fc"
    assert verify(sign(secret, BODY), BODY, (secret,)) is Verdict.VALID
    assert verify(sign(secret, BODY), BODY, ("geheim-aou",)) is Verdict.MISMATCH
