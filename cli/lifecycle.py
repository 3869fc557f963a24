"""`sessionpack cancel`, `reschedule`, `refund` and `reconcile`.

The commands check synchronously what can be checked now (tokens, policy windows, the new
time, amounts) with the same service functions the tasks use, and refuse with the contract's
exit codes before anything is enqueued. Then they send the public task with an id of their
own, which is also the change key: with `--wait` they follow that change in the activity
stream until it is applied (and its money has reached Stripe) or refused.
"""
from __future__ import annotations

import sys
import uuid

import click

from services.money import format_amount

from .common import container, emit, ensure_schema, reporting, say, wait_for

WAIT_HELP = "wait up to SECONDS for the change (and its refund or fee) to be done, then print the booking"


def _send_and_report(c, task_name: str, kwargs: dict, queued: dict, wait: float | None) -> None:
    """Enqueue the public task; print `queued`, or with --wait the booking once the change settled."""
    from sqlalchemy.orm import object_session

    from services.lifecycle import change_outcome, money_pending

    from services.tokens import redact

    task_id = str(uuid.uuid4())
    # kwargsrepr is what Celery shows in logs, events and Flower: the tokens are hidden there.
    c.celery_app.send_task(task_name, kwargs=kwargs, task_id=task_id, kwargsrepr=redact(repr(kwargs)))
    queued = {**queued, "status": "queued", "task_id": task_id}
    if wait is None:
        emit(queued)
        return
    outcome = None

    def settled(booking) -> bool:
        nonlocal outcome
        db = object_session(booking)
        outcome = change_outcome(db, booking.id, task_id)
        return outcome is not None and (outcome.state == "refused" or not money_pending(db, booking.id, task_id))

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
        from services.lifecycle import preview_cancel

        c = container()
        ensure_schema(c)
        kwargs = {"session_ids": list(session_ids), "tokens": list(tokens) or None, "admin": admin,
                  "refund": not no_refund, "reason": reason}
        plan = preview_cancel(c, **kwargs)
        queued = {"booking_id": plan["booking_id"], "sessions": plan["session_ids"],
                  "refund": format_amount(plan["refund_cents"], plan["currency"])}
        if plan["withdraw"]:
            queued["withdraw"] = True  # a request awaiting approval: withdrawn as a whole
        _send_and_report(c, "sessionpack.cancel_sessions", kwargs, queued, wait)

    @main.command()
    @click.argument("session_id")
    @click.option("--to", "to", required=True, help="the new start, ISO 8601 with an offset")
    @click.option("--token", default=None, help="the customer's manage token of this session")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator (no window, no fee)")
    @click.option("--wait", type=float, default=None, help=WAIT_HELP)
    @reporting
    def reschedule(session_id: str, to: str, token: str | None, admin: bool, wait: float | None) -> None:
        """Move one session to a new time (the policy's fee is charged to the saved card first)."""
        from services.lifecycle import preview_reschedule

        c = container()
        ensure_schema(c)
        plan = preview_reschedule(c, session_id, to, token=token, admin=admin)
        queued = {"booking_id": plan["booking_id"], "session_id": session_id, "start": plan["start"],
                  "fee": format_amount(plan["fee_cents"], plan["currency"])}
        kwargs = {"session_id": session_id, "to": to, "token": token, "admin": admin}
        _send_and_report(c, "sessionpack.reschedule_session", kwargs, queued, wait)

    @main.command()
    @click.argument("booking_id")
    @click.option("--amount", required=True, help="how much to refund, like 12.50")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator (required)")
    @click.option("--reason", default=None, help="told to the customer and kept in the activity stream")
    @click.option("--wait", type=float, default=None, help=WAIT_HELP)
    @reporting
    def refund(booking_id: str, amount: str, admin: bool, reason: str | None, wait: float | None) -> None:
        """Refund any amount up to what is still refundable (captured + fees - refunded)."""
        from services.lifecycle import preview_refund

        c = container()
        ensure_schema(c)
        plan = preview_refund(c, booking_id, amount, admin=admin, reason=reason)
        queued = {"booking_id": booking_id, "amount": format_amount(plan["amount_cents"], plan["currency"])}
        kwargs = {"booking_id": booking_id, "amount": amount, "admin": admin, "reason": reason}
        _send_and_report(c, "sessionpack.refund_booking", kwargs, queued, wait)

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
