"""Failure and compensation: record why the saga stopped, then undo in reverse order (meetings,
the authorization, the held slots), unless a capture whose answer was lost went through."""
from __future__ import annotations

from sqlalchemy import select

from models import Booking, LedgerEntry, Meeting, Payment
from ..conferencing import meeting_request
from ..errors import PermanentError, ServiceError
from ..notifications import compose
from ..notifications.booking_view import booking_view
from ..notifications.outbox import queue_emails
from ..payments import MoneyMovement
from .confirm import confirm_booking
from .saga import TASK_FOR_STEP, load_at_step, mark_step, money_key


def fail_booking(c, booking_id: str, step: str, exc: ServiceError | Exception) -> None:
    """Record why the saga stopped and start the compensations (once)."""
    code = getattr(exc, "code", "internal_error")
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    with c.uow() as uow:
        booking = uow.db.get(Booking, booking_id)
        if booking is None or booking.status != "pending" or booking.saga_step == "compensate":
            return
        booking.failure = {"step": step, "code": code, "message": message}
        booking.saga_step = "compensate"
        mark_step(uow.db, booking_id, step, "failed", booking.failure)
        uow.record(f"{step}.failed", booking_id=booking_id, code=code, message=message)
        uow.enqueue(TASK_FOR_STEP["compensate"], booking_id=booking_id)
        uow.commit()


def compensate_booking(c, booking_id: str, *, give_up: BaseException | None = None) -> None:
    """Undo in reverse order: meetings, then the authorization, then the held slots.

    Each undo is idempotent (a meeting already gone or an authorization already cancelled
    counts as done), so the task can run any number of times. An undo the peer refuses for good
    (PermanentError) is recorded as left over (an orphaned meeting, an authorization whose cancel
    failed: `doctor` lists both) and the rest goes on; a transient failure raises, for the task
    to retry. When its retries have run out the task calls again with `give_up` (the last error):
    then whatever still fails is left over the same way, so the booking always ends `failed` with
    its slots free instead of hanging in `pending`."""
    def left_over(exc: Exception) -> bool:
        return give_up is not None or isinstance(exc, PermanentError)

    if capture_went_through(c, booking_id):
        return  # past the pivot after all: confirmed, never rolled back

    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return
        meetings = [(m.id, m.session_id, m.provider, m.external_id) for m in uow.db.execute(
            select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]),
                                  Meeting.status != "deleted")).scalars()]
        requests = {s.id: meeting_request(booking, s) for s in booking.sessions}
        payment = uow.db.execute(select(Payment.id, Payment.status, Payment.intent_id)
                                 .where(Payment.booking_id == booking_id)).first()

    for meeting_id, session_id, provider_name, external_id in meetings:
        provider = c.conferencing.get(provider_name)
        refused = None
        try:
            if external_id is None and provider is not None:
                found = provider.find(requests[session_id])
                external_id = found.external_id if found else None
            if external_id is not None and provider is not None:
                provider.delete(external_id)
        except Exception as exc:  # e.g. credentials revoked: the rest must still be undone
            if not left_over(exc):
                raise
            refused = exc
        with c.uow() as uow:
            row = uow.db.get(Meeting, meeting_id)
            if refused is None:
                row.status, row.deleted_at = "deleted", c.clock()
                uow.record("compensation.meeting_deleted", booking_id=booking_id, session_id=session_id,
                           meeting_id=external_id)
            else:
                # Left at the provider: `doctor` lists orphaned meetings for someone to remove by hand.
                row.status = "orphaned"
                uow.record("compensation.meeting_delete_failed", booking_id=booking_id, session_id=session_id,
                           meeting_id=external_id, **_error(refused))
            uow.commit()

    if payment is not None and payment.status in ("authorizing", "authorized", "failed"):
        intent_id, refused = payment.intent_id, None
        try:
            if intent_id is None and payment.status == "authorizing":
                found = c.payments.find_authorization(booking_id, money_key(booking_id, "authorize"))
                intent_id = found.intent_id if found else None
            if intent_id is not None:
                c.payments.cancel_authorization(intent_id, idempotency_key=money_key(booking_id, "cancel"))
        except Exception as exc:
            if not left_over(exc):
                raise
            refused = exc
        with c.uow() as uow:
            row = uow.db.get(Payment, payment.id)
            if refused is None:
                row.status = "cancelled"
                if intent_id:
                    uow.record("compensation.authorization_cancelled", booking_id=booking_id, intent=intent_id)
            else:
                # Never captured, so nothing was charged; Stripe lets an uncaptured authorization
                # lapse by itself within days. `doctor` lists it meanwhile.
                row.status = "cancel_failed"
                uow.record("compensation.authorization_cancel_failed", booking_id=booking_id, intent=intent_id,
                           **_error(refused))
            uow.commit()

    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return
        for s in booking.sessions:
            s.status = "released"
        uow.record("compensation.slots_released", booking_id=booking_id, sessions=len(booking.sessions))
        booking.status, booking.saga_step = "failed", "done"
        mark_step(uow.db, booking_id, "compensate", "done")
        uow.record("booking.failed", booking_id=booking_id, **(booking.failure or {}))
        uow.db.flush()
        queue_emails(uow, compose.booking_failed(booking_view(uow.db, booking, c.settings)), booking_id=booking_id)
        uow.commit()


def _error(exc: BaseException) -> dict:
    return {"code": getattr(exc, "code", "internal_error"),
            "message": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"}


def capture_went_through(c, booking_id: str) -> bool:
    """Before undoing anything: did a capture whose answer was lost reach Stripe? Then the booking
    is past its pivot and is confirmed instead (a transient error here retries the compensation)."""
    with c.read() as db:
        entry = db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == money_key(booking_id, "capture"),
                                                     LedgerEntry.status == "pending")).scalar_one_or_none()
        payment = db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        if entry is None or payment is None or not payment.intent_id:
            return False
        intent_id = payment.intent_id
    summary = c.payments.intent_summary(intent_id)
    if summary.get("status") != "succeeded":
        return False
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return False
        uow.record("compensation.cancelled", booking_id=booking_id, reason="the capture had reached Stripe",
                   failure=booking.failure)
        booking.saga_step, booking.failure = "capture", None
        uow.commit()
    movement = MoneyMovement(object_id=intent_id, amount_cents=summary.get("amount_received", 0), status="succeeded")
    confirm_booking(c, booking_id, movement)
    return True
