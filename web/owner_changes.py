"""The owner console's admin changes, through the one edge API (services/lifecycle/requests.py):
each is checked now (a refusal is shown at once and nothing is queued), then written to the task
outbox with an admin grant, under a change id the confirmation page chose, so a form posted twice
makes one change. `outcome` reads back what the worker did (`change_status`).

`admin=True` is ours to say: the owner signed in, and only bookings of their own pages reach here
(web/owner.py checks the scope before calling).
"""
from __future__ import annotations

from dataclasses import dataclass

from services.errors import InvalidInput
from services.lifecycle import requests as edge


def new_change_id(action: str) -> str:
    """The id the confirmation page carries to the final post (the change's idempotency key)."""
    return edge.new_change_id({"approve": "approve", "decline": "decline"}.get(action, "change"))


def sessions_of_booking(c, booking_id: str, session_ids: list[str]) -> None:
    """Refuse session ids that are not all this booking's, before anything is queued: the page's
    scope check was on the booking in the URL, so the sessions must be its own."""
    from sqlalchemy import select

    from models import Session

    if not session_ids:
        raise InvalidInput("session_ids_required", "Tick at least one session.")
    with c.session_factory() as db:
        found = dict(db.execute(select(Session.id, Session.booking_id).where(Session.id.in_(session_ids))).all())
    if any(found.get(s) != booking_id for s in session_ids):
        raise InvalidInput("not_this_booking", "Those sessions are not this booking's.")


def actor_of_owner(owner_id: str) -> str:
    """How the activity stream names the signed-in owner: `owner:<owner id>`."""
    from services.lifecycle.access import admin_actor

    return admin_actor("owner", owner_id)


def cancel(c, booking_id: str, session_ids: list[str], *, refund: bool, reason: str | None, change_id: str,
           actor: str | None = None) -> str:
    sessions_of_booking(c, booking_id, session_ids)
    return str(edge.request_cancel(c, session_ids, admin=True, refund=refund, reason=reason, change_id=change_id,
                                   actor=actor))


def reschedule(c, booking_id: str, session_id: str, to: str, *, change_id: str, actor: str | None = None) -> str:
    sessions_of_booking(c, booking_id, [session_id])
    return str(edge.request_reschedule(c, session_id, to, admin=True, change_id=change_id, actor=actor))


def refund(c, booking_id: str, amount: str, *, reason: str | None, change_id: str, actor: str | None = None) -> str:
    return str(edge.request_refund(c, booking_id, amount, reason=reason, refund_id=change_id, admin=True, actor=actor))


def decide(c, booking_id: str, decision: str, *, reason: str | None, change_id: str, actor: str | None = None) -> str:
    if decision == "approve":
        return str(edge.request_approve(c, booking_id, change_id=change_id, actor=actor))
    return str(edge.request_decline(c, booking_id, reason=reason, change_id=change_id, actor=actor))


@dataclass(frozen=True)
class ChangeOutcome:
    """`waiting` (the worker has not decided, or its money is still on its way), `done`, or
    `refused` with the message saying why (nothing changed)."""

    state: str
    message: str = ""

    @property
    def state_label(self) -> str:
        return {"waiting": "in progress", "done": "done", "refused": "refused"}[self.state]


def outcome(c, booking_id: str, change_id: str) -> ChangeOutcome:
    status = edge.change_status(c, booking_id, change_id)
    state, booking_status = status["state"], status["booking_status"]
    if state == "refused":
        return ChangeOutcome("refused", (status["error"] or {}).get("message", "The change was refused."))
    if state == "queued":
        return ChangeOutcome("waiting")
    if change_id.startswith(("ap_", "dc_")):
        if state == "applied":
            return ChangeOutcome("waiting", "Approved; the booking is being confirmed (payment, meetings, emails).")
        if change_id.startswith("ap_") and booking_status != "confirmed":
            return ChangeOutcome("refused", f"The request was approved but the booking is {booking_status.replace('_', ' ')}; "
                                            "see its activity below.")
        return ChangeOutcome("done", "The booking is confirmed." if change_id.startswith("ap_")
                             else "The request is declined; the customer is told.")
    if state == "applied":
        return ChangeOutcome("waiting", "Applied; its money is on its way to Stripe.")
    return ChangeOutcome("done", "The change is applied.")
