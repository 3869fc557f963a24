"""The lifecycle's money and time rules, pure (services/lifecycle/policy.py)."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from services.errors import OperationFailed
from services.lifecycle import policy
from services.money import allocate

START = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)


def check(action="cancel", *, allowed=True, hours=24, now):
    policy.check_window(action, allowed=allowed, min_notice_hours=hours, start=START, now=now,
                        session_label="session 1 (ss_x)")


@pytest.mark.parametrize("action", ["cancel", "reschedule"])
def test_window_just_inside_and_at_the_deadline(action):
    check(action, now=START - timedelta(hours=24, seconds=1))
    check(action, now=START - timedelta(hours=24))  # the deadline itself is still in time


@pytest.mark.parametrize("action", ["cancel", "reschedule"])
def test_window_just_outside_names_the_deadline(action):
    with pytest.raises(OperationFailed) as err:
        check(action, now=START - timedelta(hours=24) + timedelta(seconds=1))
    assert err.value.code == f"too_late_to_{action}"
    assert "2026-12-06T14:00:00Z" in err.value.message and "24 hours" in err.value.message


def test_policy_not_allowed_is_refused_even_early():
    with pytest.raises(OperationFailed) as err:
        check("reschedule", allowed=False, now=START - timedelta(days=30))
    assert err.value.code == "policy_forbids" and "rescheduling" in err.value.message


def test_fractional_and_zero_notice():
    check(hours=0, now=START)
    check(hours=1.5, now=START - timedelta(minutes=90))
    with pytest.raises(OperationFailed):
        check(hours=1.5, now=START - timedelta(minutes=89))


def test_the_worked_examples():
    costs = allocate(15000, 3)
    assert costs == [5000, 5000, 5000]
    assert policy.refund_amounts(costs[:1], 50) == [2500]
    assert sum(policy.refund_amounts(costs, 50)) == 7500
    assert policy.reschedule_fee(5000, 10) == 500
    assert allocate(10000, 3) == [3334, 3333, 3333]
    assert allocate(80000, 10) == [8000] * 10


def test_refunds_round_half_up_once_over_the_package():
    # per session 16.67 + 16.665 + 16.665 would round to 50.01; on the running total, 50.00
    assert policy.refund_amounts([3334, 3333, 3333], 50) == [1667, 1667, 1666]
    assert policy.refund_amounts([1, 1], 50) == [1, 0]
    assert policy.refund_amounts([1], 50, cancelled_before=1) == [0]
    assert policy.refund_amounts([999], 0) == [0]


def test_cap_amounts_takes_from_the_first_sessions():
    assert policy.cap_amounts([2500, 2500, 2500], 6000) == [2500, 2500, 1000]
    assert policy.cap_amounts([2500, 2500], 0) == [0, 0]
    assert policy.cap_amounts([100], -5) == [0]
    assert policy.cap_amounts([100, 200], 10_000) == [100, 200]


def test_refundable_counts_pending_refunds():
    assert policy.refundable(15000, 500, 2500, 0) == 13000
    assert policy.refundable(15000, 500, 2500, 1000) == 12000
    assert policy.refundable(100, 0, 100, 50) == 0


def test_split_refund_uses_the_package_intent_first_then_fees():
    caps = [("pi_pkg", 15000), ("pi_fee1", 500), ("pi_fee2", 700)]
    assert policy.split_refund(caps, 0, 2500) == [("pi_pkg", 2500)]
    assert policy.split_refund(caps, 14000, 1200) == [("pi_pkg", 1000), ("pi_fee1", 200)]
    assert policy.split_refund(caps, 15100, 1100) == [("pi_fee1", 400), ("pi_fee2", 700)]
    assert policy.split_refund(caps, 0, 0) == []
    with pytest.raises(ValueError):
        policy.split_refund(caps, 16000, 201)


@settings(max_examples=300, deadline=None)
@given(price=st.integers(0, 10_000_000), n=st.integers(1, 20),
       refund_percent=st.decimals(0, 100, places=2), fee_percent=st.decimals(0, 100, places=2),
       cancelled=st.data())
def test_rounding_never_gives_back_or_charges_more_than_was_paid(price, n, refund_percent, fee_percent, cancelled):
    costs = allocate(price, n)
    assert sum(costs) == price and len(costs) == n
    assert max(costs) - min(costs) <= 1
    chosen = cancelled.draw(st.lists(st.sampled_from(range(n)), unique=True, min_size=1))
    refunds = policy.refund_amounts([costs[i] for i in chosen], refund_percent)
    assert all(0 <= r <= costs[i] for r, i in zip(refunds, chosen))
    assert sum(refunds) <= price
    for cost in costs:
        assert 0 <= policy.reschedule_fee(cost, fee_percent) <= cost
    # Cancelling every session one at a time never refunds more than the price.
    assert sum(policy.refund_amounts(costs, refund_percent)) <= price


@settings(max_examples=300, deadline=None)
@given(caps=st.lists(st.integers(0, 100_000), min_size=1, max_size=6), refunds=st.lists(st.integers(1, 50_000), max_size=8))
def test_split_refunds_never_take_more_from_an_intent_than_it_took(caps, refunds):
    intents = [(f"pi_{i}", cap) for i, cap in enumerate(caps)]
    taken = {name: 0 for name, _ in intents}
    done = 0
    for amount in refunds:
        amount = min(amount, policy.refundable(sum(caps), 0, done, 0))
        for name, cents in policy.split_refund(intents, done, amount):
            assert cents > 0
            taken[name] += cents
        done += amount
    assert sum(taken.values()) == done <= sum(caps)
    assert all(taken[name] <= cap for name, cap in intents)
