"""Currencies from Babel's table plus Stripe's documented exceptions: the units we keep, the
amounts Stripe gets, and the currencies `config apply` refuses (exit 2, the setting named)."""
from __future__ import annotations

from datetime import date

import pytest

from services.config import parse_config
from services.currency import (STRIPE_THREE_DECIMAL, STRIPE_ZERO_DECIMAL, currency_units, from_stripe,
                               minor_units, tendered, to_stripe)
from services.errors import InvalidInput
from services.money import allocate, format_amount, parse_amount
from tests.support import example_config

ON = date(2026, 6, 1)


@pytest.mark.parametrize("code, price, ours, stripe", [
    ("USD", "10.00", 1000, 1000),
    ("EUR", "12.34", 1234, 1234),
    ("KWD", "10.00", 1000, 10000),  # three-decimal: thousandths, last digit 0
    ("BHD", "1.25", 125, 1250),
    ("JOD", "7.10", 710, 7100),
    ("OMR", "0.01", 1, 10),
    ("TND", "99.99", 9999, 99990),
    ("JPY", "3000", 3000, 3000),  # zero-decimal
    ("KRW", "50000", 50000, 50000),
    ("UGX", "20000", 20000, 20000),
    ("ISK", "5", 5, 500),  # zero-decimal, written with two decimals that are always 00
    ("HUF", "1500", 1500, 150000),  # CLDR: whole forints; Stripe: two-decimal charges
    ("TWD", "300.50", 30050, 30050),  # two-decimal charges
])
def test_amounts_in_our_units_and_in_stripes(code, price, ours, stripe):
    currency_units(code, on=ON)  # accepted
    assert parse_amount(price, code) == ours
    assert to_stripe(ours, code) == stripe and from_stripe(stripe, code) == ours
    assert format_amount(ours, code) == price


def test_ten_kwd_is_sent_to_stripe_as_10000_not_1000():
    assert to_stripe(parse_amount("10.00", "KWD"), "KWD") == 10000
    # every amount Stripe gets in a three-decimal currency ends in 0, whatever the split
    for part in allocate(parse_amount("10.00", "KWD"), 3):
        assert to_stripe(part, "KWD") % 10 == 0
    assert all(to_stripe(1, c) % 10 == 0 for c in STRIPE_THREE_DECIMAL)
    assert to_stripe(7, "ISK") % 100 == 0


def test_finer_stripe_amounts_come_back_rounded_to_our_units():
    assert from_stripe(5125, "KWD") == 513 and from_stripe(5124, "KWD") == 512
    assert from_stripe(1234, "USD") == 1234


def test_three_decimals_of_a_three_decimal_currency_are_refused_with_the_reason():
    with pytest.raises(InvalidInput) as err:
        parse_amount("10.005", "KWD", field="payment.price")
    assert err.value.exit_code == 2 and "payment.price" in err.value.message and "Stripe" in err.value.message


def test_the_table_is_babels():
    assert minor_units("USD") == 2 and minor_units("JPY") == 0 and minor_units("KWD") == 2
    assert minor_units("ISK") == 0 and minor_units("CLP") == 0
    assert minor_units("not-a-code") == 2  # never raises for stored rows
    assert {"USD", "EUR", "JPY", "KWD"} <= tendered(ON)
    assert STRIPE_ZERO_DECIMAL <= tendered(ON)


@pytest.mark.parametrize("code, why", [
    ("LYD", "three-decimal"),  # CLDR gives 3 decimals; Stripe documents no three-decimal LYD
    ("XAU", "not a currency in use"),  # gold
    ("XTS", "not a currency in use"),  # testing code
    ("ITL", "not a currency in use"),  # withdrawn
    ("ABC", "not a currency in use"),
    ("CLF", "not a currency in use"),  # a unit of account
    ("US", "3-letter"),
])
def test_currencies_stripe_cannot_charge_in_our_units_are_refused(code, why):
    with pytest.raises(InvalidInput) as err:
        currency_units(code, on=ON)
    assert err.value.code == "unsupported_currency" and err.value.exit_code == 2
    assert "payment.currency" in err.value.message


def test_config_apply_refuses_such_a_currency_naming_the_setting():
    cfg = example_config()
    cfg["booking_pages"][0]["event_types"][0]["payment"] = {"price": "80.000", "currency": "LYD"}
    with pytest.raises(InvalidInput) as err:
        parse_config(cfg)
    assert err.value.exit_code == 2
    assert "payment.currency" in err.value.message and "LYD" in err.value.message
    cfg["booking_pages"][0]["event_types"][0]["payment"] = {"price": "800.00", "currency": "KWD"}
    parse_config(cfg)  # accepted
    cfg["booking_pages"][0]["event_types"][0]["payment"] = {"price": "800.005", "currency": "KWD"}
    with pytest.raises(InvalidInput) as err:
        parse_config(cfg)
    assert "payment.price" in err.value.message
