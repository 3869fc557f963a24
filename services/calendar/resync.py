"""Beat's re-sync of owners' calendars after the sync task gave up (its retries cover hours; an
outage can last longer) or was lost.

Everything is derived from the activity stream, no table of its own: a booking is a candidate
while its latest calendar sync entry is `calendar.sync_failed`. Each re-sync is recorded as
`calendar.resync_requested` in the transaction that queues it, so the number since the latest
`calendar.synced` sets the wait before the next one: `base` (the tick, 15 minutes by default)
after the latest entry, doubled per re-sync, at most a day. A failure after which the task itself
will try again (recorded with `final: false`) is left to that retry for at least
`RETRY_CHAIN_GAP` (the task's longest wait between tries, plus five minutes), so the sweep does not
run beside a retry chain that is still going; if no newer entry comes by then, the chain died with
its worker and the sweep takes over. A re-sync is a single try of
`sessionpack.sync_calendar` (`retry=False`), so re-syncs never pile up retry chains. After
`bound` from the first failure (7 days by default) the sweep stops; doctor keeps listing the
booking for a human.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import select

from models import Activity, Booking
from models.messaging import CALENDAR_SYNC_ACTIONS

from . import SYNC_MAX_DELAY_SECONDS, request_sync
from .doctor import failed_syncs

log = logging.getLogger("sessionpack.calendar.resync")

RESYNC_REQUESTED = "calendar.resync_requested"
MAX_WAIT = timedelta(hours=24)
RETRY_CHAIN_GAP = timedelta(seconds=SYNC_MAX_DELAY_SECONDS, minutes=5)
MAX_BOOKINGS_PER_TICK = 50


def resync_wait(requests: int, base: timedelta) -> timedelta:
    """The wait before re-sync number `requests + 1`: base, 2 base, 4 base, ... at most a day."""
    return min(base * 2 ** min(requests, 16), MAX_WAIT)


def resync_due(entries: Sequence[Activity], now: datetime, base: timedelta, bound: timedelta) -> bool:
    """Whether a booking is due for a re-sync, from its calendar entries since its latest
    `calendar.synced` (oldest first; the latest sync entry among them is a failure)."""
    failures = [e for e in entries if e.action == "calendar.sync_failed"]
    if not failures or now - failures[0].at > bound:
        return False
    requests = sum(1 for e in entries if e.action == RESYNC_REQUESTED)
    wait = resync_wait(requests, base)
    if entries[-1] is failures[-1] and not (getattr(failures[-1], "details", None) or {}).get("final", True):
        # The sync task will try again itself: leave it its longest wait, and then some (a chain
        # that died with its worker is picked up after that).
        wait = max(wait, RETRY_CHAIN_GAP)
    return now - entries[-1].at >= wait


def _since_last_sync(db, booking_ids: list[str]) -> dict[str, list[Activity]]:
    """Each booking's calendar entries after its latest `calendar.synced`, oldest first."""
    entries: dict[str, list[Activity]] = defaultdict(list)
    rows = db.execute(select(Activity).where(Activity.booking_id.in_(booking_ids),
                                             Activity.action.in_((*CALENDAR_SYNC_ACTIONS, RESYNC_REQUESTED)))
                      .order_by(Activity.id)).scalars()
    for entry in rows:
        if entry.action == "calendar.synced":
            entries[entry.booking_id].clear()
        else:
            entries[entry.booking_id].append(entry)
    return entries


def resync_calendars(c, limit: int = MAX_BOOKINGS_PER_TICK) -> dict:
    """The sweep: queue a one-try `sessionpack.sync_calendar` for each booking that is due (see
    the module docstring), the longest waiting first, at most `limit` per tick. Returns
    {"failing", "queued"}: bookings failing within the bound, and re-syncs queued now."""
    now = c.clock()
    base, bound = timedelta(seconds=c.settings.calendar_resync_seconds), timedelta(days=c.settings.calendar_resync_days)
    with c.uow() as uow:
        # A booking whose latest failure is older than the bound has its first one older still.
        failing = [a.booking_id for a in failed_syncs(uow.db, since=now - bound)]
        entries = _since_last_sync(uow.db, failing) if failing else {}
        due = sorted((b for b in failing if resync_due(entries[b], now, base, bound)), key=lambda b: entries[b][-1].at)
        queued = 0
        for booking_id in due[:limit]:
            booking = uow.db.get(Booking, booking_id)
            if booking is not None and request_sync(uow, booking_id, booking.owner_id, retry=False):
                attempt = 1 + sum(1 for e in entries[booking_id] if e.action == RESYNC_REQUESTED)
                uow.record(RESYNC_REQUESTED, booking_id=booking_id, attempt=attempt)
                queued += 1
        uow.commit()
    if queued:
        log.info("queued %d calendar re-sync(s) of %d failing booking(s)", queued, len(failing))
    return {"failing": len(failing), "queued": queued}
