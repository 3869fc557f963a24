"""Withdrawing a request that awaits the owner's approval (manual booking mode).

It is the normal cancel path (`sessionpack cancel` / the `sessionpack.cancel_sessions` task, with
the customer's manage tokens or `--admin`) finding the booking `awaiting_approval`. A request is
approved or withdrawn as a whole: every session of it must be named (manual mode is single-session
by the contract's rules, so that is the one session of the request), otherwise it is refused with
`withdraw_whole_request`. Cancellation policies do not apply (nothing is booked yet) and no money
moves: in manual mode nothing is authorized before the owner approves (payment is only allowed
with automatic booking mode, and the saga's authorize step runs after approval).

In one transaction, under the booking's lock taken by `changes.begin_change` (the owner's
approve/decline lock the same row in `booking.approval.load_awaiting`, so whichever commits first wins):
the held slots are released (sessions `cancelled`), the booking ends `cancelled` with failure
`{"step": "approval", "code": "withdrawn"}`, the activity records who did it, and one email goes
to each side. A second withdrawal finds the sessions cancelled and is refused with
`session_already_cancelled` (nothing changes, nothing is sent); the same change run twice is a
replay (`begin_change`).
"""
from __future__ import annotations

from typing import Sequence

from models import Booking, Session

from ..booking.views import booking_view
from ..errors import OperationFailed
from ..money import format_amount
from ..notifications import compose
from ..notifications.outbox import queue_emails
from .access import by_admin

FAILURE_CODE = "withdrawn"


def check_whole_request(booking: Booking, sessions: Sequence[Session]) -> None:
    """A request is withdrawn as a whole: refuse when some of its sessions are not named."""
    named = {s.id for s in sessions}
    missing = [s for s in sorted(booking.sessions, key=lambda s: s.number) if s.id not in named]
    if missing:
        raise OperationFailed(
            "withdraw_whole_request",
            f"booking {booking.id} is a request awaiting the owner's approval, which is withdrawn as a whole; "
            f"name all its {len(booking.sessions)} sessions (missing: {', '.join(s.id for s in missing)}), "
            f"with one --token each, to withdraw it; nothing was changed",
        )


def failure_message(actor: str, reason: str | None) -> str:
    who = "the administrator" if by_admin(actor) else "the customer"
    message = f"{who} withdrew the request before the owner decided"
    return f"{message}: {reason}" if reason else message


def apply_withdrawal(uow, c, plan, *, actor: str, reason: str | None, change_key: str) -> dict:
    """Withdraw the checked request of `plan` (a `cancel.CancelPlan` with `withdraw` set) in the
    caller's transaction, which holds the booking's lock. Returns the cancel result."""
    from ..booking.saga import mark_step

    booking, db, now = plan.booking, uow.db, c.clock()
    ids = [s.id for s in plan.sessions]
    for s in plan.sessions:
        s.status, s.cancelled_at, s.cancel_reason = "cancelled", now, reason
        uow.record("session.cancelled", booking_id=booking.id, session_id=s.id, actor=actor, number=s.number,
                   refund=format_amount(0, booking.currency), currency=booking.currency, reason=reason,
                   withdrawn=True, change=change_key)
    booking.status, booking.saga_step, booking.expires_at = "cancelled", "done", None
    booking.failure = {"step": "approval", "code": FAILURE_CODE, "message": failure_message(actor, reason)}
    mark_step(db, booking.id, "approval", "failed", booking.failure)
    uow.record("booking.withdrawn", booking_id=booking.id, actor=actor, code=FAILURE_CODE, reason=reason,
               change=change_key)
    db.flush()
    view = booking_view(db, booking, c.settings)
    queue_emails(uow, compose.request_withdrawn(view, reason, by_admin=by_admin(actor)), booking_id=booking.id)
    return {"booking_id": booking.id, "cancelled": ids, "refund_cents": 0, "withdrawn": True,
            "change_key": change_key, "replayed": False}
