"""Stalled bookings: a beat task re-enqueues the current step of a booking that has not moved."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models import Booking
from .saga import TASK_FOR_STEP


def resume_stalled(c, older_than: timedelta) -> int:
    """Re-enqueue the current step of every pending booking that has not moved for a while
    (a lost message, a broker restart). Steps are idempotent, so a duplicate does no harm."""
    cutoff = c.clock() - older_than
    with c.uow() as uow:
        stalled = uow.db.execute(
            select(Booking.id, Booking.saga_step).where(Booking.status == "pending", Booking.updated_at < cutoff)
        ).all()
        for booking_id, step in stalled:
            if step in TASK_FOR_STEP:
                uow.enqueue(TASK_FOR_STEP[step], booking_id=booking_id)
                uow.db.query(Booking).filter(Booking.id == booking_id).update({"updated_at": c.clock()})
        uow.commit()
    return len(stalled)
