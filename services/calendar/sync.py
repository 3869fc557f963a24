"""Bring an owner's calendar in line with one booking: one function for confirm, reschedule
and cancel, run by the `sessionpack.sync_calendar` task after the change has committed.

Confirmed sessions are written (a moved one carries its raised SEQUENCE), cancelled ones are
deleted, held ones (a booking still in its saga or awaiting approval) are left alone. It never
changes the booking: it runs after the pivot, so a calendar that is down only delays the events.
"""
from __future__ import annotations

from dataclasses import dataclass

from models import Booking, Owner

from ..errors import TransientError
from ..notifications.booking_view import booking_view
from ..notifications.views import BookingView
from .base import CalendarSync
from .busy import CaldavBusySource

# Session states whose event must not be in the calendar (released: the booking failed).
_GONE = ("cancelled", "released")
# Writing again when the booking changed while we wrote; more changes than this in one run
# are left to the retry.
_MAX_PASSES = 3


@dataclass(frozen=True)
class _Snapshot:
    owner: Owner
    view: BookingView


def calendar_for(c) -> CalendarSync:
    """The container's calendar backend: the one its busy source reads, so both share their
    connections; a new CalDAV one when the container has no such busy source."""
    if isinstance(c.busy_source, CaldavBusySource):
        return c.busy_source.calendar
    from .caldav_calendar import CaldavCalendar

    return CaldavCalendar(c.settings)


def _snapshot(c, booking_id: str) -> _Snapshot | None:
    """The booking as it is now, or None when there is no calendar to keep in line."""
    with c.uow() as uow:
        booking = uow.db.get(Booking, booking_id)
        owner = uow.db.get(Owner, booking.owner_id) if booking is not None and booking.owner_id else None
        if owner is None or not owner.calendar:
            return None
        snap = _Snapshot(owner=owner, view=booking_view(uow.db, booking, c.settings))
        uow.db.expunge(owner)  # keeps its loaded values when the read-only transaction rolls back
        return snap


def _calendar_state(view: BookingView) -> tuple:
    """What the calendar must show for a booking: confirmed sessions with everything their
    event carries, the others only by status (a meeting deleted after a cancel changes nothing)."""
    return tuple(s if s.status == "confirmed" else (s.id, s.status) for s in view.sessions)


def _apply(calendar: CalendarSync, snap: _Snapshot) -> dict[str, list[int]]:
    written, deleted = [], []
    for session in snap.view.sessions:
        if session.status == "confirmed":
            calendar.put_event(snap.owner, snap.view, session)
            written.append(session.number)
        elif session.status in _GONE:
            calendar.delete_event(snap.owner, session.uid)
            deleted.append(session.number)
    return {"written": written, "deleted": deleted}


def _record_if_current(c, booking_id: str, snap: _Snapshot, outcome: dict) -> bool:
    """Record the sync, unless the sessions changed while we wrote (a reschedule or cancel
    committed meanwhile): then what we wrote may be stale and the caller writes again."""
    with c.uow() as uow:
        booking = uow.db.get(Booking, booking_id)
        if _calendar_state(booking_view(uow.db, booking, c.settings)) != _calendar_state(snap.view):
            return False
        uow.record("calendar.synced", booking_id=booking_id, **outcome)
        uow.commit()
    return True


def _record_failure(c, booking_id: str, exc: Exception, last_try: bool) -> None:
    """`final`: no retry of the task follows this failure (the re-sync sweep waits for that)."""
    code = getattr(exc, "code", "internal_error")
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    retriable = isinstance(exc, TransientError)
    with c.uow() as uow:
        uow.record("calendar.sync_failed", booking_id=booking_id, code=code, message=message,
                   retriable=retriable, final=last_try or not retriable)
        uow.commit()


def sync_booking(c, booking_id: str, calendar: CalendarSync | None = None, *, last_try: bool = True) -> dict | None:
    """Write every confirmed session's event into the owner's calendar and delete the
    cancelled sessions' events. Safe to run any number of times (events are addressed by
    UID). Returns {'written': [numbers], 'deleted': [numbers]}, or None when the owner has no
    calendar. Records `calendar.synced`, or `calendar.sync_failed` and re-raises: a
    TransientError is for the task to retry with backoff (`last_try=False` while it will)."""
    calendar = calendar or calendar_for(c)
    for _ in range(_MAX_PASSES):
        snap = _snapshot(c, booking_id)
        if snap is None:
            return None
        try:
            outcome = _apply(calendar, snap)
        except Exception as exc:
            _record_failure(c, booking_id, exc, last_try)
            raise
        if not outcome["written"] and not outcome["deleted"]:
            return outcome  # nothing is confirmed or cancelled yet: nothing to say
        if _record_if_current(c, booking_id, snap, outcome):
            return outcome
    raced = TransientError("calendar_sync_raced", f"booking {booking_id} kept changing while its calendar "
                           f"events were written; the next try writes its latest state")
    _record_failure(c, booking_id, raced, last_try)
    raise raced

