"""Owners' calendars: every session written into the owner's CalDAV calendar (moved on
reschedule, deleted on cancel), and the calendar's busy times kept out of availability.

- `sync_booking(c, booking_id)`: the `sessionpack.sync_calendar` task's work;
- `build_busy_source(settings)`: the container's `busy_source`;
- `check_calendars(c)`: the `sessionpack doctor` entries;
- `resync.resync_calendars(c)`: beat's sweep of the bookings whose sync gave up.
"""
from __future__ import annotations

SYNC_CALENDAR = "sessionpack.sync_calendar"  # the task that brings a booking's events up to date
# The longest the sync task waits between its own tries (tasks/calendar.py); the re-sync sweep
# leaves a booking to a retry chain that may still be running for at least this long.
SYNC_MAX_DELAY_SECONDS = 900.0



def request_sync(uow, booking_id: str, owner_id: str | None, **options) -> bool:
    """Ask, in this transaction, for the owner's calendar to be brought up to date with the
    booking, when the owner has connected one (no task at all otherwise: False). `options` go
    to the task (`retry=False`: one try)."""
    from models import Owner

    owner = uow.db.get(Owner, owner_id) if owner_id else None
    if owner is None or not owner.calendar:
        return False
    uow.enqueue(SYNC_CALENDAR, booking_id=booking_id, **options)
    return True


from .base import CalendarConnection, CalendarSync, connection_for
from .busy import CaldavBusySource, build_busy_source
from .doctor import check_calendars
from .sync import calendar_for, sync_booking

__all__ = [
    "SYNC_CALENDAR", "SYNC_MAX_DELAY_SECONDS", "request_sync", "CaldavBusySource", "CalendarConnection", "CalendarSync", "build_busy_source", "calendar_for",
    "check_calendars", "connection_for", "sync_booking",
]
