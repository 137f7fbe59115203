"""Money in integer minor units of its currency (no float drift)."""
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, list_currencies


@lru_cache(maxsize=256)
def exponent(currency: str) -> int:
    """Digits after the decimal point of `currency` (EUR 2, JPY 0, ...)."""
    return get_currency_precision(currency)


def check_currency(code: str) -> str:
    """Return the upper-cased ISO 4217 code, or raise ValueError."""
    value = (code or "").strip().upper()
    if len(value) != 3 or not value.isalpha():
        raise ValueError(f"currency {code!r} is not a three-letter ISO code")
    if value not in list_currencies():
        raise ValueError(f"unknown currency {code!r}")
    return value


def parse_amount(text, what="amount") -> Decimal:
    """A non-negative decimal from text such as `220.06`; ValueError otherwise."""
    if isinstance(text, Decimal):
        value = text
    else:
        raw = str(text).strip()
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"{what} {raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{what} {text!r} is not a number")
    if value < 0:
        raise ValueError(f"{what} {text!r} is negative")
    return value


def to_minor(amount: Decimal, currency: str) -> int:
    """Convert a decimal amount to integer minor units, rounding half-even to the currency's digits."""
    return int((amount * (10 ** exponent(currency))).quantize(Decimal(1), rounding="ROUND_HALF_EVEN"))


def from_minor(minor: int, currency: str) -> Decimal:
    """Integer minor units back to a Decimal amount."""
    return Decimal(minor).scaleb(-exponent(currency))


def format_money(minor: int | None, currency: str, locale: str = "en") -> str:
    """Human-readable amount in the viewer's locale (`€1,234.50`)."""
    if minor is None:
        return ""
    return format_currency(from_minor(minor, currency), currency, locale=locale)


@lru_cache(maxsize=64)
def _whole_pattern(locale: str) -> str:
    """The locale's currency pattern without its fraction digits (en `¤#,##0`, nl `¤ #,##0`)."""
    return re.sub(r"\.0+", "", Locale.parse(locale).currency_formats["standard"].pattern)


def format_money_short(minor: int, currency: str, locale: str = "en") -> str:
    """An amount as running text says it: without cents when it is whole (`€10`, `€ 10`, `10 zł`),
    with them otherwise (`€12.50`); the symbol, spacing and order are the locale's."""
    amount = from_minor(minor, currency)
    if amount != amount.to_integral_value():
        return format_currency(amount, currency, locale=locale)
    return format_currency(amount, currency, format=_whole_pattern(locale), locale=locale, currency_digits=False)
