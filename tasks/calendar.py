"""Keeping owners' calendars in line with bookings (after confirm, reschedule and cancel)."""
from __future__ import annotations

import logging

from services.calendar import SYNC_MAX_DELAY_SECONDS, sync_booking
from worker.app import app

from .base import backoff, container, is_transient

log = logging.getLogger("sessionpack.tasks.calendar")

# A calendar server that is down for a while must still catch up: with up to 15 minutes
# between tries (jittered), 40 tries cover several hours of outage.
SYNC_MAX_RETRIES = 40


@app.task(name="sessionpack.sync_calendar", bind=True, acks_late=True, max_retries=None)
def sync_calendar(self, booking_id: str, retry: bool = True) -> dict | None:
    """Write the booking's sessions into the owner's calendar; never changes the booking.
    `retry=False` (beat's re-sync, services/calendar/resync.py) tries once: the sweep's own
    growing interval stands in for the retries, so re-syncs never pile up retry chains."""
    last_try = not retry or self.request.retries >= SYNC_MAX_RETRIES
    try:
        return sync_booking(container(), booking_id, last_try=last_try)
    except Exception as exc:  # noqa: BLE001 - classified below
        if retry and is_transient(exc) and self.request.retries < SYNC_MAX_RETRIES:
            log.info("calendar sync of %s will retry: %s", booking_id, exc)
            delay = backoff(self.request.retries, getattr(exc, "retry_after", None), cap=SYNC_MAX_DELAY_SECONDS)
            raise self.retry(exc=exc, countdown=delay)
        raise
