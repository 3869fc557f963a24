"""The money and time rules of the session lifecycle, pure: no database, no clock, no I/O.

Everything here works in integer cents and aware UTC datetimes, so the rules can be tested
exhaustively (tests/unit/test_policies.py) and reused by the CLI's synchronous checks and by
the tasks that apply the change.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Sequence

from ..availability import to_utc_iso
from ..errors import OperationFailed
from ..money import percent_of

# The verb a policy window is about, as the error codes and messages spell it.
ACTIONS = {"cancel": "cancelling", "reschedule": "rescheduling"}


def notice_deadline(start: datetime, min_notice_hours: float) -> datetime:
    """The last moment a customer may still act on a session starting at `start`."""
    return start - timedelta(hours=float(min_notice_hours))


def check_window(action: str, *, allowed: bool, min_notice_hours: float, start: datetime,
                 now: datetime, session_label: str) -> None:
    """Raise unless the policy lets the customer `action` ("cancel" | "reschedule") now.

    The window is inclusive: acting exactly at the deadline is still in time.
    """
    verb = ACTIONS[action]
    if not allowed:
        raise OperationFailed(
            "policy_forbids",
            f"{verb} is not allowed by the policy this booking was made under; "
            f"ask the booking page's administrator to {action} {session_label}",
        )
    deadline = notice_deadline(start, min_notice_hours)
    if now > deadline:
        raise OperationFailed(
            f"too_late_to_{action}",
            f"{session_label} starts {to_utc_iso(start)} and {verb} needs {min_notice_hours:g} hours' notice, "
            f"so the deadline was {to_utc_iso(deadline)} (it is now {to_utc_iso(now)}); "
            f"ask the booking page's administrator instead",
        )


def cumulative_shares(before: int, costs: Sequence[int], percent: float) -> list[int]:
    """`percent` of each of `costs`, rounded on the running total so that rounding happens once
    over a whole package: after earlier parts worth `before` (whose shares were computed the
    same way), the k-th share is round(percent * (before + costs[:k+1])) minus what the shares
    up to it already came to. However a package is split into steps, the shares add up to
    round(percent * total): $100 in three sessions at 50 % gives 16.67 + 16.67 + 16.66 = 50.00,
    never 50.01. Each share is within a cent of `percent` of its own cost, and never negative."""
    given = percent_of(before, percent)
    running, shares = before, []
    for cost in costs:
        running += cost
        total = percent_of(running, percent)
        shares.append(total - given)
        given = total
    return shares


def refund_amounts(costs: Sequence[int], refund_percent: float, cancelled_before: int = 0) -> list[int]:
    """Each cancelled session's refund, in the order given: `refund_percent` of the package's
    cancelled relative cost, rounded cumulatively (`cumulative_shares`). `cancelled_before` is
    the relative cost of the package's sessions cancelled earlier (`cancelled_cost`)."""
    return cumulative_shares(cancelled_before, costs, refund_percent)


def cap_amounts(amounts: Sequence[int], limit: int) -> list[int]:
    """Cut `amounts` down, first ones first, so they add up to at most `limit` (never below 0).

    Used when the policy would refund more than is still refundable (earlier manual refunds).
    """
    left = max(0, limit)
    capped = []
    for amount in amounts:
        take = min(amount, left)
        capped.append(take)
        left -= take
    return capped


def reschedule_fee(relative_cost: int, fee_percent: float, moved_before: int = 0) -> int:
    """The fee for moving one session: `fee_percent` of its relative cost, rounded cumulatively
    over the package's customer moves (`moved_before`: the relative costs of the sessions the
    customer moved earlier, one per move; `moved_cost`), so fees too are rounded once."""
    return cumulative_shares(moved_before, [relative_cost], fee_percent)[0]


def cancelled_cost(sessions: Iterable) -> int:
    """The relative cost of a package's sessions already cancelled: what earlier refunds were
    computed on (their refund shares were `refund_amounts` of it)."""
    return sum(s.relative_cost_cents for s in sessions if s.status == "cancelled")


def refundable(captured: int, fees: int, refunded: int, pending_refunds: int) -> int:
    """What may still be refunded: everything taken, less what was (or is being) given back."""
    return max(0, captured + fees - refunded - pending_refunds)


def _fill(caps: Sequence[tuple[str, int]], total: int) -> dict[str, int]:
    """`total` poured into the intents in order, each up to its cap."""
    used, left = {}, total
    for intent_id, cap in caps:
        used[intent_id] = min(cap, max(0, left))
        left -= used[intent_id]
    return used


def split_refund(caps: Sequence[tuple[str, int]], already_refunded: int, amount: int) -> list[tuple[str, int]]:
    """Which PaymentIntents a new refund of `amount` comes from, as [(intent_id, cents)].

    `caps` lists every intent that took money, the package's first and then each fee's in the
    order they were charged. Every refund fills them in that same order, so the refunds made so
    far (`already_refunded`, counting pending ones) have used exactly the greedy prefix, and the
    new refund is the difference between the fill of `already + amount` and of `already`. New
    fee intents only ever join at the end, which keeps that true without storing per-intent
    shares. Raises ValueError when the intents together cannot cover it.
    """
    if amount <= 0:
        return []
    if already_refunded + amount > sum(cap for _, cap in caps):
        raise ValueError("refund exceeds what the intents took")
    before, after = _fill(caps, already_refunded), _fill(caps, already_refunded + amount)
    return [(intent_id, after[intent_id] - before[intent_id]) for intent_id, _ in caps
            if after[intent_id] > before[intent_id]]
