"""`sessionpack cancel`, `reschedule`, `refund` and `reconcile`.

The commands go through the edge change API (services/lifecycle/requests.py), as the web pages
and the HTTP API do: it checks synchronously what can be checked now (tokens, policy windows, the
new time, amounts) and refuses with the contract's exit codes before anything is queued; then it
queues the public task with a grant (an admin grant for --admin, a customer grant instead of the
tokens) and a change id. With `--wait` the command follows that change until it is applied (and
its money has reached Stripe) or refused.
"""
from __future__ import annotations

import sys

import click

from services.money import format_amount

from .common import container, emit, ensure_schema, reporting, say, wait_for

WAIT_HELP = "wait up to SECONDS for the change (and its refund or fee) to be done, then print the booking"


def _report(c, change, queued: dict, wait: float | None) -> None:
    """Print `queued` (with the change id), or with --wait the booking once the change settled:
    applied with its money at Stripe, or refused (printed as the contract's error)."""
    from sqlalchemy.orm import object_session

    from services.lifecycle import change_outcome, money_pending

    change_id = str(change)
    queued = {**queued, "status": "queued", "change_id": change_id}
    if wait is None:
        emit(queued)
        return
    outcome = None

    def settled(booking) -> bool:
        nonlocal outcome
        db = object_session(booking)
        outcome = change_outcome(db, booking.id, change_id)
        return outcome is not None and (outcome.state == "refused" or not money_pending(db, booking.id, change_id))

    result = wait_for(c, queued["booking_id"], wait, settled)
    if result is None:
        say(f"the change is not done after {wait:g}s; follow it with `sessionpack activity --booking {queued['booking_id']}`")
        emit(queued)
        sys.exit(1)
    if outcome.state == "refused":
        raise outcome.error  # printed as the contract's error, with its exit code
    emit(result)


def register(main: click.Group) -> None:
    """Add the lifecycle commands to the `sessionpack` group."""

    @main.command()
    @click.argument("session_ids", nargs=-1, required=True)
    @click.option("--token", "tokens", multiple=True, help="the customer's manage token, one per session, same order")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator (no policy windows)")
    @click.option("--no-refund", is_flag=True, help="cancel without the policy's refund")
    @click.option("--reason", default=None, help="told to the other party and kept in the activity stream")
    @click.option("--wait", type=float, default=None, help=WAIT_HELP)
    @reporting
    def cancel(session_ids: tuple[str, ...], tokens: tuple[str, ...], admin: bool, no_refund: bool,
               reason: str | None, wait: float | None) -> None:
        """Cancel one or more sessions of one booking.

        On a request still awaiting the owner's approval (manual booking mode) this withdraws
        the request: name all its sessions; no policy applies and no money moves, the slot is
        freed and both sides are emailed.
        """
        from services.lifecycle.requests import request_cancel

        c = container()
        ensure_schema(c)
        change = request_cancel(c, list(session_ids), tokens=list(tokens) or None, admin=admin,
                                refund=not no_refund, reason=reason)
        plan = change.plan
        queued = {"booking_id": plan["booking_id"], "sessions": plan["session_ids"],
                  "refund": format_amount(plan["refund_cents"], plan["currency"])}
        if plan["withdraw"]:
            queued["withdraw"] = True  # a request awaiting approval: withdrawn as a whole
        _report(c, change, queued, wait)

    @main.command()
    @click.argument("session_id")
    @click.option("--to", "to", required=True, help="the new start, ISO 8601 with an offset")
    @click.option("--token", default=None, help="the customer's manage token of this session")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator (no window, no fee)")
    @click.option("--wait", type=float, default=None, help=WAIT_HELP)
    @reporting
    def reschedule(session_id: str, to: str, token: str | None, admin: bool, wait: float | None) -> None:
        """Move one session to a new time (the policy's fee is charged to the saved card first)."""
        from services.lifecycle.requests import request_reschedule

        c = container()
        ensure_schema(c)
        change = request_reschedule(c, session_id, to, token=token, admin=admin)
        plan = change.plan
        queued = {"booking_id": plan["booking_id"], "session_id": session_id, "start": plan["start"],
                  "fee": format_amount(plan["fee_cents"], plan["currency"])}
        _report(c, change, queued, wait)

    @main.command()
    @click.argument("booking_id")
    @click.option("--amount", required=True, help="how much to refund, like 12.50")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator (required)")
    @click.option("--reason", default=None, help="told to the customer and kept in the activity stream")
    @click.option("--refund-id", default=None,
                  help="your idempotency key for this refund (1-80 of A-Z a-z 0-9 . _ : -): the same one "
                       "refunds once however often it is sent; default: a new one per invocation")
    @click.option("--wait", type=float, default=None, help=WAIT_HELP)
    @reporting
    def refund(booking_id: str, amount: str, admin: bool, reason: str | None, refund_id: str | None,
               wait: float | None) -> None:
        """Refund any amount up to what is still refundable (captured + fees - refunded)."""
        from services.lifecycle.requests import request_refund

        c = container()
        ensure_schema(c)
        change = request_refund(c, booking_id, amount, reason=reason, refund_id=refund_id, admin=admin)
        plan = change.plan
        queued = {"booking_id": booking_id, "amount": format_amount(plan["amount_cents"], plan["currency"]),
                  "refund_id": plan["refund_id"]}
        _report(c, change, queued, wait)

    @main.command()
    @click.option("--booking", "booking_id", default=None, help="only this booking")
    @reporting
    def reconcile(booking_id: str | None) -> None:
        """Compare the money ledger with Stripe; exit 1 when they differ."""
        from services.lifecycle import reconcile as run

        c = container()
        ensure_schema(c)
        result = run(c, booking_id)
        emit(result)
        if not result["ok"]:
            say(f"{len(result['differences'])} difference(s) between the ledger and Stripe")
            sys.exit(1)
