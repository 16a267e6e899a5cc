"""Meta's product prices, read exactly into Decimal.

The Graph API returns a product's `price` as text formatted for display in the catalog's locale, with the
ISO 4217 code in `currency` beside it: "$19.99", "€1.234,50", "Rp460.000", "1 234,50 zł", "₹1,23,456.00",
"¥1,000", sometimes "19.99 USD". The number is read without a float: the currency sign and code are dropped,
and the separators are told apart by where they stand. Grouping separates the integer's digits in groups of
three (two in Indian grouping), so the last separator is the decimal point when a different separator comes
before it, or when fewer or more than three digits follow it. When it is the only separator and three digits
follow ("1.500"), only the currency tells: a currency with 3 decimal places (KWD, BHD...) makes it
ambiguous, and the price is refused rather than guessed; any other currency makes it grouping (1500).
"""

import re
from decimal import Decimal, InvalidOperation

# ISO 4217 currencies whose minor unit has three digits (the others have two or none).
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
SEPARATORS = ".,'\u00a0\u202f "
_NUMBER = re.compile(r"\d[\d.,'\u00a0\u202f ]*\d|\d")
# Plain digits; groups of three; or Indian grouping (groups of two, the last of three): X is a separator.
_GROUPED = re.compile(r"\d+|\d{1,3}(?:X\d{3})+|\d{1,2}(?:X\d{2})*X\d{3}")


class PriceError(ValueError):
    """The price text holds no number that can be read exactly."""


def parse_price(text: str, currency: str) -> Decimal:
    """The amount in `text` ("$1,234.50") as an exact Decimal; PriceError when it cannot be read for sure."""
    if "-" in text:
        raise PriceError(f"price {text!r} is negative or a range")
    numbers = _NUMBER.findall(text)
    if len(numbers) != 1:
        raise PriceError(f"price {text!r} holds {len(numbers)} numbers, expected one")
    number = numbers[0]
    marks = [(i, c) for i, c in enumerate(number) if c in SEPARATORS]
    if not marks:
        return _decimal(number, text)
    last_at, last = marks[-1]
    after = len(number) - last_at - 1
    earlier = {c for _, c in marks[:-1]}
    if earlier - {last}:
        decimal_mark: str | None = last  # "1,234.50", "1.234,50", "1 234,50"
    elif earlier:
        decimal_mark = None  # the same mark repeated: "1.234.567", "1,23,456"
    elif after != 3:
        decimal_mark = last  # "19.99", "12,5"
    elif currency.upper() in THREE_DECIMAL_CURRENCIES:
        raise PriceError(f"price {text!r} is ambiguous in {currency}: 3 decimals or a thousands separator")
    else:
        decimal_mark = None  # "1.500" in a currency of 0 or 2 decimals: grouping
    whole, _, fraction = number.rpartition(decimal_mark) if decimal_mark else (number, "", "")
    grouped = "".join("X" if c in SEPARATORS else c for c in whole)
    if not _GROUPED.fullmatch(grouped):
        raise PriceError(f"price {text!r}: its digits are not grouped as a price's are")
    digits = "".join(c for c in whole if c.isdigit())
    return _decimal(f"{digits}.{fraction}" if decimal_mark else digits, text)


def _decimal(number: str, text: str) -> Decimal:
    try:
        return Decimal(number)
    except InvalidOperation:
        raise PriceError(f"price {text!r} is not a number") from None
