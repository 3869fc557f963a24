"""Refunds and fees rounded once over the package, through the real services and localstripe,
on both databases: $100 in 3 sessions at 50 %, cancelled one by one, refunds 50.00 (not 50.01)."""
from __future__ import annotations

import pytest

from tests.integration.test_lifecycle import (  # noqa: F401  (fixtures)
    book, cancel, intent_of, lc, paid, raw, reschedule, show, stripe_base, stripe_refunds, later,
)

pytestmark = pytest.mark.integration

FIFTY = {"cancel": {"allowed": True, "min_notice_hours": 24, "refund_percent": 50},
         "reschedule": {"allowed": True, "min_notice_hours": 24, "fee_percent": 50}}


def test_cancelling_100_dollars_in_three_one_by_one_refunds_exactly_50(paid, db_backend, clock, raw):
    shown = book(paid, clock, 3, "100.00", **FIFTY)
    assert [s["relative_cost"] for s in shown["sessions"]] == ["33.34", "33.33", "33.33"]
    refunds = [cancel(paid, [s])["refund_cents"] for s in shown["sessions"]]
    assert refunds == [1667, 1667, 1666]
    final = show(paid, shown["id"])
    assert final["refunded"] == "50.00" and final["status"] == "cancelled"
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == sorted([1667, 1667, 1666])


def test_fees_of_moves_are_rounded_once_over_the_package(paid, clock):
    shown = book(paid, clock, 3, "100.00", **FIFTY)
    second = shown["sessions"][1]  # 33.33: 50 % is 16.665 a move
    fees = [reschedule(paid, second, later(clock, 10 + k))["fee_cents"] for k in range(2)]
    assert fees == [1667, 1666]  # 33.33 for two moves of 33.33, not 33.34
    assert show(paid, shown["id"])["fees"] == "33.33"
