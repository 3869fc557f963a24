"""A three-decimal currency end to end against localstripe: 10.00 KWD is authorized as 10000
(Stripe's thousandths), the ledger keeps 10.00, and a refund goes out in Stripe's units."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.booking import submit_booking
from tests.integration.test_lifecycle import (  # noqa: F401  (fixtures)
    cancel, intent_of, lc, paid, raw, show, stripe_base, stripe_refunds,
)
from tests.support import apply_config, booking_request, daily_slots, drain, package_config

pytestmark = pytest.mark.integration


def test_ten_kwd_reaches_stripe_as_10000(paid, clock, raw):
    cfg = package_config(2, price="10.00", cancel={"allowed": True, "min_notice_hours": 24, "refund_percent": 50})
    cfg["booking_pages"][0]["event_types"][0]["payment"]["currency"] = "KWD"
    apply_config(paid, cfg)
    slots = daily_slots(clock() + timedelta(days=3), 2)
    booking_id = submit_booking(paid, booking_request(slots, payment_method="pm_card_visa"))
    drain(paid)
    shown = show(paid, booking_id)
    assert shown["status"] == "confirmed", shown["failure"]
    assert shown["currency"] == "KWD" and shown["price"] == "10.00" and shown["paid"] == "10.00"
    intent = raw.payment_intents.retrieve(intent_of(paid, booking_id))
    assert intent.amount == 10000 and intent.currency == "kwd"
    cancel(paid, [shown["sessions"][0]])  # 50 % of 5.00 KWD
    assert show(paid, booking_id)["refunded"] == "2.50"
    assert stripe_refunds(raw, intent.id) == [2500]
