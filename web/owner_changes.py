"""The owner console's admin changes, handed to the worker, and what became of them.

Each function checks the change now (the same `preview_*` the CLI uses, so a refusal is shown at
once and nothing is queued), then queues the public task with a change id of our own (the task
id, hence the change key the worker records its outcome under). `outcome` reads that outcome back
from the activity stream and the ledger.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.errors import InvalidInput, ServiceError

DECISION_PREFIX = {"approve": "ap-", "decline": "dc-"}


def _send(c, task_name: str, kwargs: dict, change_id: str) -> str:
    from services.tokens import redact

    c.celery_app.send_task(task_name, kwargs=kwargs, task_id=change_id, kwargsrepr=redact(repr(kwargs)))
    return change_id


def cancel(c, booking_id: str, session_ids: list[str], *, refund: bool, reason: str | None, actor: str) -> str:
    from services.lifecycle import preview_cancel

    plan = preview_cancel(c, session_ids, admin=True, refund=refund, reason=reason)
    if plan["booking_id"] != booking_id:
        raise InvalidInput("not_this_booking", "those sessions are not this booking's")
    kwargs = {"session_ids": list(session_ids), "tokens": None, "admin": True, "refund": refund, "reason": reason}
    return _send(c, "sessionpack.cancel_sessions", kwargs, str(uuid.uuid4()))


def reschedule(c, booking_id: str, session_id: str, to: str, *, actor: str) -> str:
    from services.lifecycle import preview_reschedule

    plan = preview_reschedule(c, session_id, to, admin=True)
    if plan["booking_id"] != booking_id:
        raise InvalidInput("not_this_booking", "that session is not this booking's")
    kwargs = {"session_id": session_id, "to": to, "token": None, "admin": True}
    return _send(c, "sessionpack.reschedule_session", kwargs, str(uuid.uuid4()))


def refund(c, booking_id: str, amount: str, *, reason: str | None, actor: str) -> str:
    from services.lifecycle import preview_refund

    preview_refund(c, booking_id, amount, admin=True, reason=reason)
    kwargs = {"booking_id": booking_id, "amount": amount, "admin": True, "reason": reason}
    return _send(c, "sessionpack.refund_booking", kwargs, str(uuid.uuid4()))


def decide(c, booking_id: str, decision: str, *, reason: str | None, actor: str) -> str:
    from services.booking.workflow import load_awaiting

    with c.uow() as uow:
        load_awaiting(uow, booking_id, allow=())
    if decision == "approve":
        kwargs, task = {"booking_id": booking_id}, "sessionpack.approve_booking"
    else:
        kwargs, task = {"booking_id": booking_id, "reason": reason}, "sessionpack.decline_booking"
    return _send(c, task, kwargs, DECISION_PREFIX[decision] + str(uuid.uuid4()))


@dataclass(frozen=True)
class ChangeOutcome:
    """`waiting` (the worker has not decided, or its money is still on its way), `done`, or
    `refused` with the message saying why (nothing changed)."""

    state: str
    kind: str
    message: str = ""

    @property
    def state_label(self) -> str:
        return {"waiting": "in progress", "done": "done", "refused": "refused"}[self.state]


def outcome(c, booking_id: str, change_id: str) -> ChangeOutcome:
    from models import Booking
    from services.lifecycle import change_outcome, money_pending

    with c.session_factory() as db:
        for decision, prefix in DECISION_PREFIX.items():
            if change_id.startswith(prefix):
                booking = db.get(Booking, booking_id)
                if booking.status in ("awaiting_approval", "pending"):
                    return ChangeOutcome("waiting", decision)
                failure = booking.failure or {}
                if decision == "approve" and booking.status == "confirmed":
                    return ChangeOutcome("done", decision, "The booking is approved and confirmed.")
                if decision == "decline" and failure.get("code") == "declined":
                    return ChangeOutcome("done", decision, "The request is declined; the customer is told.")
                return ChangeOutcome("refused", decision, f"The booking is now {booking.status.replace('_', ' ')}"
                                     + (f": {failure.get('message')}" if failure.get("message") else "."))
        found = change_outcome(db, booking_id, change_id)
        if found is None:
            return ChangeOutcome("waiting", "change")
        if found.state == "refused":
            error: ServiceError = found.error
            return ChangeOutcome("refused", "change", error.message)
        if money_pending(db, booking_id, change_id):
            return ChangeOutcome("waiting", "change", "Applied; its money is on its way to Stripe.")
        return ChangeOutcome("done", "change", "The change is applied.")
