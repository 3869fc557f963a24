"""Money in integer cents: parsing, formatting, the relative-cost allocation, percentages.

"Cents" are the currency's minor units as this service keeps them (`services.currency`): two
decimals for USD and KWD, none for JPY, ISK and HUF. Amounts cross to Stripe through
`currency.to_stripe` / `from_stripe`.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .currency import minor_units
from .errors import InvalidInput

__all__ = ["allocate", "display_amount", "format_amount", "minor_units", "parse_amount", "percent_of"]


# Amounts are stored in 32-bit integer columns: 21,474,836.47 in a two-decimal currency.
MAX_MINOR_UNITS = 2**31 - 1


def parse_amount(text: str | int | float | Decimal, currency: str = "USD", *, field: str = "amount") -> int:
    """'12.50' -> 1250. Refuses negatives, NaN, more decimals than the currency has, and amounts
    beyond what the ledger stores."""
    shown = str(text)[:40] + ("..." if len(str(text)) > 40 else "")
    try:
        value = Decimal(str(text).strip())
    except (ArithmeticError, ValueError):
        raise InvalidInput("invalid_amount", f"{field} {shown!r} is not a number; write it like 12.50")
    if not value.is_finite() or value < 0:
        raise InvalidInput("invalid_amount", f"{field} {shown!r} must be zero or more, like 12.50")
    digits = minor_units(currency)
    limit = Decimal(MAX_MINOR_UNITS).scaleb(-digits)
    if value.adjusted() > 12 or value > limit:
        raise InvalidInput("invalid_amount", f"{field} {shown!r} is too large; the most is {limit} {currency}")
    scaled = value.scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            "invalid_amount",
            f"{field} {text!r} has more than {digits} decimals for {currency} (the finest amount Stripe "
            f"charges in {currency}); round it to {digits}",
        )
    return int(scaled)


def format_amount(cents: int, currency: str = "USD") -> str:
    """1250 -> '12.50' (the contract's decimal string; no symbol)."""
    digits = minor_units(currency)
    if digits == 0:
        return str(cents)
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 10 ** digits)
    return f"{sign}{whole}.{part:0{digits}d}"


def display_amount(cents: int, currency: str = "USD") -> str:
    """For people: '$50.00', '€12.50', '3000 JPY'."""
    symbols = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}
    symbol = symbols.get(currency.upper())
    return f"{symbol}{format_amount(cents, currency)}" if symbol else f"{format_amount(cents, currency)} {currency.upper()}"


def allocate(total_cents: int, parts: int) -> list[int]:
    """Split a price into `parts` relative costs that add up to it exactly.

    Largest remainder: every part gets total // parts and the first total % parts get one
    cent more. 10000 / 3 -> [3334, 3333, 3333].
    """
    if parts < 1:
        raise ValueError("parts must be at least 1")
    base, extra = divmod(total_cents, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def percent_of(cents: int, percent: int | float | Decimal) -> int:
    """`percent` % of an amount, rounded half up to the cent, never more than the amount."""
    value = (Decimal(cents) * Decimal(str(percent)) / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(0, min(cents, int(value)))
