"""Refunds and reschedule fees rounded once over a package (largest remainder across the
package): however the sessions are cancelled (one by one, in groups, in any order), the refunds
add up to round(percent * price); every share stays within a cent of its own session's part."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.lifecycle import policy
from services.money import allocate, percent_of

PERCENTS = st.one_of(st.integers(0, 100), st.decimals(0, 100, places=2, allow_nan=False, allow_infinity=False))


@st.composite
def cancellations(draw):
    """A package (price, N, percent) and an order of cancelling all of it, in groups."""
    price = draw(st.integers(0, 5_000_000))
    n = draw(st.integers(1, 20))
    percent = draw(PERCENTS)
    order = draw(st.permutations(range(n)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=n - 1))) if n > 1 else []
    groups, start = [], 0
    for cut in cuts + [n]:
        if cut > start:
            groups.append(list(order[start:cut]))
            start = cut
    return price, n, percent, groups


def cancel_all(price, n, percent, groups):
    costs = allocate(price, n)
    cancelled, refunds = [], []
    for group in groups:
        before = sum(costs[i] for i in cancelled)
        shares = policy.refund_amounts([costs[i] for i in group], percent, cancelled_before=before)
        refunds.append(shares)
        cancelled += group
    return costs, refunds


@settings(max_examples=400, deadline=None)
@given(cancellations())
def test_cancelling_every_session_refunds_the_percentage_of_the_price_rounded_once(case):
    price, n, percent, groups = case
    costs, refunds = cancel_all(price, n, percent, groups)
    assert sum(sum(r) for r in refunds) == percent_of(price, percent)
    for group, shares in zip(groups, refunds):
        for i, share in zip(group, shares):
            exact = Decimal(costs[i]) * Decimal(str(percent)) / 100
            assert share >= 0 and abs(share - exact) <= 1


@settings(max_examples=200, deadline=None)
@given(cancellations())
def test_any_prefix_of_cancellations_has_refunded_its_own_share_rounded_once(case):
    price, n, percent, groups = case
    costs, refunds = cancel_all(price, n, percent, groups)
    done, paid = [], 0
    for group, shares in zip(groups, refunds):
        done += group
        paid += sum(shares)
        assert paid == percent_of(sum(costs[i] for i in done), percent)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5_000_000), st.integers(1, 20), PERCENTS, st.data())
def test_reschedule_fees_are_rounded_once_over_the_package(price, n, percent, data):
    costs = allocate(price, n)
    moves = data.draw(st.lists(st.integers(0, n - 1), max_size=40))
    moved, fees = 0, []
    for i in moves:
        fees.append(policy.reschedule_fee(costs[i], percent, moved_before=moved))
        moved += costs[i]
    assert sum(fees) == percent_of(moved, percent)
    assert all(f >= 0 for f in fees)


def test_100_dollars_in_three_sessions_at_50_percent_refunds_50_00_not_50_01():
    costs = allocate(10000, 3)
    assert costs == [3334, 3333, 3333]
    first = policy.refund_amounts([costs[0]], 50)
    second = policy.refund_amounts([costs[1]], 50, cancelled_before=costs[0])
    third = policy.refund_amounts([costs[2]], 50, cancelled_before=costs[0] + costs[1])
    assert first + second + third == [1667, 1667, 1666]
    assert sum(first + second + third) == 5000
    # the old per-session rounding gave 1667 + 1667 + 1667 = 5001
    assert sum(percent_of(c, 50) for c in costs) == 5001
    # and in one go
    assert sum(policy.refund_amounts(costs, 50)) == 5000


def test_150_dollars_one_then_two_at_50_percent():
    costs = allocate(15000, 3)
    assert policy.refund_amounts([costs[0]], 50) == [2500]
    assert sum(policy.refund_amounts(costs[1:], 50, cancelled_before=costs[0])) == 5000


def test_fees_of_three_moves_at_10_percent_of_33_33():
    costs = allocate(10000, 3)
    fees = [policy.reschedule_fee(costs[1], 10, moved_before=costs[1] * k) for k in range(3)]
    assert sum(fees) == percent_of(costs[1] * 3, 10) == 1000
