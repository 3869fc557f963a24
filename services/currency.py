"""Currencies: the decimals we keep for each one and how Stripe wants its amounts.

Built from a maintained table, not a hand-written one: Babel's CLDR data gives each ISO 4217
currency's precision (`get_currency_precision`) and which currencies are legal tender somewhere
today (`get_territory_currencies`). On top of it, the exceptions Stripe documents
(https://docs.stripe.com/currencies, "Zero-decimal", "Three-decimal" and "Special cases"):

- **zero-decimal** currencies (JPY, KRW, UGX, ...): Stripe's amounts are whole units;
- **three-decimal** currencies (BHD, JOD, KWD, OMR, TND): Stripe's amounts are in thousandths,
  but the last digit must be 0, so they can only be charged to the hundredth: we keep them with
  two decimals and send 10.00 KWD as 10000;
- **ISK**: effectively zero-decimal, but the API keeps two decimals that must be 00 (5 ISK is
  500): we keep whole krónur and multiply by 100;
- **HUF, TWD**: two-decimal for charges (whole units only for payouts, which this service does
  not make). CLDR keeps HUF with 0 decimals, so we keep whole forints (sent x100), TWD with 2;
- every other currency: two decimals in the API.

"Our units" (`Currency.digits`, what the ledger's integer amounts count) are the finest amount
both the currency and Stripe's charges allow. A currency Stripe cannot charge in such units is
refused (`currency_units`, called by `config apply`): an unknown or no-longer-tendered code,
funds, metals and test codes (not tender anywhere), and a currency CLDR gives three or more
decimals that Stripe does not document as a three-decimal currency (LYD).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies

from .errors import InvalidInput

# docs.stripe.com/currencies#zero-decimal
STRIPE_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                 "VND", "VUV", "XAF", "XOF", "XPF"})
# docs.stripe.com/currencies#three-decimal: amounts in thousandths whose last digit must be 0.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# docs.stripe.com/currencies#special-cases: whole units written with two decimals (always 00).
STRIPE_WHOLE_UNITS_IN_TWO_DECIMALS = frozenset({"ISK"})
# Also special cases there, but two-decimal for charges (whole units for payouts only).
STRIPE_TWO_DECIMAL_CHARGES = frozenset({"HUF", "TWD"})


@dataclass(frozen=True)
class Currency:
    code: str
    digits: int  # decimals of our integer amounts (the ledger's "cents")
    stripe_digits: int  # decimals of the integer amounts Stripe's API takes and returns

    @property
    def factor(self) -> int:
        """Stripe's units per one of ours: 10 for KWD, 100 for ISK and HUF, 1 for USD and JPY."""
        return 10 ** (self.stripe_digits - self.digits)


def _stripe_digits(code: str) -> tuple[int, int]:
    """(decimals in Stripe's API, decimals Stripe can actually charge)."""
    if code in STRIPE_ZERO_DECIMAL:
        return 0, 0
    if code in STRIPE_THREE_DECIMAL:
        return 3, 2
    if code in STRIPE_WHOLE_UNITS_IN_TWO_DECIMALS:
        return 2, 0
    return 2, 2


@lru_cache(maxsize=4)
def tendered(on: date) -> frozenset[str]:
    """Every currency that is legal tender in some territory on `on` (CLDR)."""
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, on))
    return frozenset(codes)


def _units(code: str) -> Currency:
    precision = get_currency_precision(code)
    api, chargeable = _stripe_digits(code)
    return Currency(code, min(precision, chargeable), api)


def currency_units(code: object, *, setting: str = "payment.currency", on: date | None = None) -> Currency:
    """The currency's units, or InvalidInput `unsupported_currency` naming `setting` when
    Stripe cannot charge it in our units (see the module's docstring)."""
    text = str(code).strip().upper() if isinstance(code, str) else ""
    if len(text) != 3 or not text.isalpha() or not text.isascii():
        raise InvalidInput("unsupported_currency", f"{setting} {str(code)[:20]!r} is not a 3-letter ISO 4217 code like 'USD'")
    if text not in tendered(on or date.today()):
        raise InvalidInput(
            "unsupported_currency",
            f"{setting} {text!r} is not a currency in use today (an unknown, withdrawn, fund, metal or test "
            f"code), so Stripe cannot charge it; use the ISO code of the currency customers pay in",
        )
    precision = get_currency_precision(text)
    if precision > 2 and text not in STRIPE_THREE_DECIMAL:
        raise InvalidInput(
            "unsupported_currency",
            f"{setting} {text!r} has {precision} decimals, and Stripe charges three-decimal amounts only in "
            f"{', '.join(sorted(STRIPE_THREE_DECIMAL))}; choose another currency",
        )
    return _units(text)


def minor_units(code: str) -> int:
    """Decimals of our integer amounts in `code`. Never raises: a stored booking in a currency
    refused today (or an unknown code) is still shown, with CLDR's precision capped at 2."""
    text = (code or "").upper()
    try:
        return _units(text).digits
    except Exception:  # babel raises for codes it has never heard of
        return 2


def to_stripe(amount: int, code: str) -> int:
    """Our integer amount as Stripe's: 1000 (10.00 KWD) -> 10000; 500 ISK -> 50000."""
    return int(amount) * _units(code.upper()).factor


def from_stripe(amount: int, code: str) -> int:
    """Stripe's integer amount as ours (rounded half up to our units when Stripe reports
    something finer, e.g. a refund of 5.125 KWD typed in its dashboard)."""
    factor = _units(code.upper()).factor
    return (int(amount) + factor // 2) // factor if factor > 1 else int(amount)
