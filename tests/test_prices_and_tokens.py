"""Meta's display prices read exactly into Decimal, and tenants' tokens encrypted at rest with rotation."""

import logging
from decimal import Decimal

import pytest

from outbound.prices import PriceError, parse_price
from outbound.tokens import KEYS_VARIABLE, TokenError, Tokens, new_key, token_box
from runtime import logs
from runtime.config import ConfigError


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("$19.99", "USD", "19.99"),
        ("19.99 USD", "USD", "19.99"),
        ("USD 1,234.50", "USD", "1234.50"),
        ("€1.234,50", "EUR", "1234.50"),
        ("1 234,50 zł", "PLN", "1234.50"),
        ("1\u00a0234,50\u00a0€", "EUR", "1234.50"),
        ("CHF 1'234.50", "CHF", "1234.50"),
        ("Rp460.000", "IDR", "460000"),
        ("₹1,23,456.00", "INR", "123456.00"),
        ("¥1,000", "JPY", "1000"),
        ("$10", "USD", "10"),
        ("12,5 €", "EUR", "12.5"),
        ("KWD 1,234.567", "KWD", "1234.567"),
        ("0.1", "USD", "0.1"),
    ],
)
def test_prices_are_read_exactly(text: str, currency: str, amount: str) -> None:
    parsed = parse_price(text, currency)
    assert parsed == Decimal(amount) and str(parsed) == amount  # digit for digit, never through a float


@pytest.mark.parametrize(
    ("text", "currency", "why"),
    [
        ("KWD 1.500", "KWD", "ambiguous"),
        ("$1-2", "USD", "negative or a range"),
        ("-5.00", "USD", "negative"),
        ("from $5 to $9", "USD", "2 numbers"),
        ("free", "USD", "0 numbers"),
        ("1,2,3", "USD", "not grouped"),
        ("12.34.56,7", "EUR", "not grouped"),
    ],
)
def test_prices_that_cannot_be_read_for_sure_are_refused(text: str, currency: str, why: str) -> None:
    with pytest.raises(PriceError, match=why):
        parse_price(text, currency)


def test_a_tenant_token_is_stored_encrypted_and_read_back() -> None:
    tokens = Tokens(box=token_box({KEYS_VARIABLE: new_key()}))
    encrypted = tokens.encrypt("EAAG-tenant-secret-token")
    assert "EAAG" not in encrypted
    assert tokens.for_tenant(7, encrypted) == "EAAG-tenant-secret-token"


def test_rotation_re_encrypts_with_the_first_key_and_the_old_key_can_then_go() -> None:
    old, new = new_key(), new_key()
    stored = Tokens(box=token_box({KEYS_VARIABLE: old})).encrypt("EAAG-rotated-token")
    rotating = Tokens(box=token_box({KEYS_VARIABLE: f"{new},{old}"}))
    assert rotating.for_tenant(1, stored) == "EAAG-rotated-token"  # both keys decrypt meanwhile
    rotated = rotating.rotate(stored)
    assert Tokens(box=token_box({KEYS_VARIABLE: new})).for_tenant(1, rotated) == "EAAG-rotated-token"
    with pytest.raises(TokenError, match="cannot be decrypted"):
        Tokens(box=token_box({KEYS_VARIABLE: new})).for_tenant(1, stored)


def test_the_default_token_and_what_is_missing() -> None:
    assert Tokens(default="EAAG-default").for_tenant(3, None) == "EAAG-default"
    with pytest.raises(TokenError, match="WHATSAPP_ACCESS_TOKEN"):
        Tokens().for_tenant(3, None)
    with pytest.raises(TokenError, match=KEYS_VARIABLE):
        Tokens(default="EAAG-default").for_tenant(3, "gAAAA-encrypted")
    with pytest.raises(ConfigError, match=KEYS_VARIABLE):
        Tokens().encrypt("EAAG")


def test_a_malformed_key_stops_start_up_naming_the_variable_not_the_key() -> None:
    with pytest.raises(ConfigError, match=f"{KEYS_VARIABLE}: key 2 is not a Fernet key") as raised:
        token_box({KEYS_VARIABLE: f"{new_key()},not-a-key-secret"})
    assert "not-a-key-secret" not in str(raised.value)


def test_a_decrypted_token_is_masked_in_every_log_line(caplog: pytest.LogCaptureFixture) -> None:
    tokens = Tokens(box=token_box({KEYS_VARIABLE: new_key()}))
    token = tokens.for_tenant(1, tokens.encrypt("EAAG-masked-in-logs-9d1e"))
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "calling with %s", (token,), None)
    assert token not in logs.JsonFormatter().format(record)
    assert "***" in logs.TextFormatter().format(record)
