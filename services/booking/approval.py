"""Manual booking mode: a held request awaits the owner's approval, then is approved (the saga
goes on), declined, withdrawn (`lifecycle.withdraw`) or expires."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models import Booking
from ..availability import to_utc_iso
from ..errors import NotFound, OperationFailed
from ..notifications import compose
from ..notifications.booking_view import booking_view
from ..notifications.outbox import queue_emails
from .saga import TASK_FOR_STEP, mark_step, next_step
from .views import how_request_ended

DEFAULT_APPROVAL_EXPIRY_HOURS = 72.0


def await_approval(uow, booking: Booking, now, settings) -> None:
    """Manual mode: the slot stays held until the owner decides or the request expires."""
    hours = booking.terms.get("approval_expiry_hours") or DEFAULT_APPROVAL_EXPIRY_HOURS
    booking.status, booking.saga_step = "awaiting_approval", "approval"
    booking.expires_at = now + timedelta(hours=float(hours))
    uow.record("booking.awaiting_approval", booking_id=booking.id, expires_at=to_utc_iso(booking.expires_at))
    uow.db.flush()
    queue_emails(uow, compose.approval_requested(booking_view(uow.db, booking, settings)), booking_id=booking.id)


def approve_booking(c, booking_id: str, actor: str = "admin") -> str:
    """Run the rest of the workflow for a request awaiting approval. Idempotent: approving a
    booking that is already on its way or confirmed changes nothing."""
    with c.uow() as uow:
        booking = load_awaiting(uow, booking_id, allow=("pending", "confirmed"))
        if booking.status != "awaiting_approval":
            return booking.status
        booking.status, booking.expires_at = "pending", None
        mark_step(uow.db, booking_id, "approval", "done")
        uow.record("booking.approved", booking_id=booking_id, actor=actor)
        booking.saga_step = next_step(booking, None)
        uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking_id)
        uow.commit()
        return "pending"


def decline_booking(c, booking_id: str, reason: str | None = None, actor: str = "admin",
                    code: str = "declined") -> str:
    """Release a request's slot and tell the customer. Idempotent for a booking already declined."""
    with c.uow() as uow:
        booking = load_awaiting(uow, booking_id, allow=("cancelled",))
        if booking.status != "awaiting_approval":
            return booking.status
        for s in booking.sessions:
            s.status, s.cancelled_at, s.cancel_reason = "cancelled", c.clock(), reason
        message = reason or ("the request expired before the owner decided" if code == "approval_expired"
                             else "the owner declined the request")
        booking.status, booking.saga_step, booking.expires_at = "cancelled", "done", None
        booking.failure = {"step": "approval", "code": code, "message": message}
        mark_step(uow.db, booking_id, "approval", "failed", booking.failure)
        uow.record("booking.declined", booking_id=booking_id, actor=actor, code=code, reason=reason)
        uow.db.flush()
        view = booking_view(uow.db, booking, c.settings)
        queue_emails(uow, compose.booking_declined(view, message, expired=code == "approval_expired"),
                     booking_id=booking_id)
        uow.commit()
        return "cancelled"


def load_awaiting(uow, booking_id: str, allow: tuple[str, ...]) -> Booking:
    """The booking, locked for this transaction (like `lifecycle.access.lock_booking`, so an
    approval, a decline and a customer's withdrawal decide one after the other), when it awaits
    approval or is in one of the `allow`ed states (an earlier, repeated decision); otherwise
    NotFound or OperationFailed `not_awaiting_approval`."""
    booking = uow.db.execute(select(Booking).where(Booking.id == booking_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if booking is None:
        raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id")
    if booking.status != "awaiting_approval" and booking.status not in allow:
        raise OperationFailed("not_awaiting_approval",
                              f"booking {booking_id} is {booking.status}{how_request_ended(booking)}, not awaiting approval; only requests made in manual booking mode can be approved or declined")
    return booking


def expire_approval_requests(c) -> int:
    """Decline every request whose approval window has passed (a beat task)."""
    with c.read() as db:
        due = [b for (b,) in db.execute(select(Booking.id).where(
            Booking.status == "awaiting_approval", Booking.expires_at <= c.clock()))]
    for booking_id in due:
        decline_booking(c, booking_id, actor="system", code="approval_expired")
    return len(due)
