"""The pivot: money recorded, booking and sessions confirmed, the consolidated emails written to
the outbox, the reminders planned and the owner's calendar sync requested, all in one transaction."""
from __future__ import annotations

from sqlalchemy import select

from models import Booking, LedgerEntry, Owner, Payment
from ..availability import to_utc_iso
from ..calendar import request_sync
from ..money import format_amount
from ..notifications import compose
from ..notifications.booking_view import booking_view
from ..notifications.outbox import queue_emails
from ..notifications.reminders import plan_reminders
from .saga import load_at_step, mark_steps, money_key


def confirm_booking(c, booking_id: str, movement=None) -> None:
    """The pivot's transaction: money recorded, booking and sessions confirmed, the consolidated
    emails written to the outbox and the reminders planned, all or nothing."""
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "capture")
        if booking is not None:
            confirm_within(c, uow, booking, movement)
            uow.commit()


def confirm_within(c, uow, booking: Booking, movement, *, done_before: tuple[str, ...] = ()) -> None:
    """`confirm_booking`'s work in the caller's transaction, which the caller commits.

    `done_before` are earlier steps done in this same transaction (the hold and the meetings of a
    booking confirmed at once, services/booking/at_once.py): the saga log gets them in the same
    single upsert as the pivot's own three."""
    booking_id, db = booking.id, uow.db
    # Held for the whole transaction: the ORM's identity map is weak, and without this reference
    # the view and the calendar check would each load the owner again (after an autoflush).
    owner = db.get(Owner, booking.owner_id) if booking.owner_id else None  # noqa: F841
    if movement is not None:
        entry = db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == money_key(booking_id, "capture"))).scalar_one()
        entry.status, entry.stripe_object_id = "succeeded", movement.object_id
        payment = db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one()
        payment.status = "captured"
        uow.record("payment.captured", booking_id=booking_id, amount=format_amount(booking.price_cents, booking.currency),
                   currency=booking.currency)
    for s in booking.sessions:
        s.status = "confirmed"
    booking.status, booking.saga_step = "confirmed", "done"
    uow.record("booking.confirmed", booking_id=booking_id, sessions=len(booking.sessions))
    for s in booking.sessions:
        uow.record("session.confirmed", booking_id=booking_id, session_id=s.id, number=s.number,
                   start=to_utc_iso(s.start_at))
    db.flush()  # before the saga log's Core upsert: a booking made in this transaction must exist
    mark_steps(db, booking_id, (*done_before, "capture", "notify", "reminders"), "done")
    view = booking_view(db, booking, c.settings)
    queue_emails(uow, compose.booking_confirmed(view, now=c.clock()), booking_id=booking_id)
    plan_reminders(db, booking, booking.sessions, now=c.clock())
    request_sync(uow, booking_id, booking.owner_id)
