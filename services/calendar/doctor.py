"""`sessionpack doctor` checks for owners' calendars."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from models import Activity, Owner
from models.messaging import CALENDAR_SYNC_ENTRY

from ..errors import ServiceError
from .base import CalendarSync
from .sync import calendar_for

_LISTED = 5  # bookings named in the detail; the count says how many there are


def failed_syncs(db, since: datetime | None = None) -> list[Activity]:
    """The latest calendar entry of every booking whose latest calendar sync failed (at or
    after `since`, when given), oldest first."""
    latest = select(func.max(Activity.id).label("id")).where(CALENDAR_SYNC_ENTRY)  # ix_activity_calendar_sync
    if since is not None:  # the same answer: a latest entry at or after `since` is the latest since then too
        latest = latest.where(Activity.at >= since)
    latest = latest.group_by(Activity.booking_id).subquery()
    query = select(Activity).join(latest, Activity.id == latest.c.id).where(Activity.action == "calendar.sync_failed")
    return list(db.execute(query.order_by(Activity.id)).scalars())


def _sync_entry(failed: list[Activity]) -> dict[str, Any]:
    if not failed:
        return {"name": "calendar sync", "ok": True, "detail": "every synced booking is in its owner's calendar"}
    named = ", ".join(f"{a.booking_id} ({(a.details or {}).get('code')}: {(a.details or {}).get('message')})"
                      for a in failed[:_LISTED])
    more = f" and {len(failed) - _LISTED} more" if len(failed) > _LISTED else ""
    return {"name": "calendar sync", "ok": False,
            "detail": f"{len(failed)} booking(s) not in their owner's calendar: {named}{more}; beat syncs "
                      f"them again, less and less often, for CALENDAR_RESYNC_DAYS after the first failure: "
                      f"fix the cause (the calendar check above says what)"}


def check_calendars(c, calendar: CalendarSync | None = None) -> list[dict[str, Any]]:
    """One entry per owner with a calendar (the password variable is set, the server answers,
    the login works, the URL is a calendar) and one for bookings whose latest calendar sync
    failed. Each entry is {'name', 'ok', 'detail'}; no owner with a calendar and no failed
    sync gives an empty list."""
    calendar = calendar or calendar_for(c)
    with c.uow() as uow:
        # Filtered here, not in SQL: an unset JSON column may hold SQL NULL or JSON null.
        owners = [o for o in uow.db.execute(select(Owner).order_by(Owner.id)).scalars() if o.calendar]
        failed = failed_syncs(uow.db)
        uow.db.expunge_all()  # keep the loaded values when the read-only transaction rolls back
    entries = []
    for owner in owners:
        try:
            entries.append({"name": f"calendar {owner.id}", "ok": True, "detail": calendar.check(owner)})
        except ServiceError as exc:
            entries.append({"name": f"calendar {owner.id}", "ok": False, "detail": f"{exc.code}: {exc.message}"})
    if owners or failed:
        entries.append(_sync_entry(failed))
    return entries
