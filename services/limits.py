"""Per-day and per-week booking limits of single-session event types (owner's timezone).

Counted on the event type's bookings that hold or have their time: pending, awaiting approval
and confirmed. A full day or week disappears from `slots`, and a booking into it is refused
with `limit_reached`; so is a reschedule into it (the moved session itself not counted, so a
move within its own day or week is always possible). Packages cannot have limits (a
configuration rule).
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from models import Booking, EventType, Session

from .availability import to_utc_iso
from .errors import OperationFailed

COUNTED_STATES = ("pending", "awaiting_approval", "confirmed")


def has_limits(et: EventType) -> bool:
    return bool(et.max_bookings_per_day or et.max_bookings_per_week)


def _week(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return iso.year, iso.week


def _counts(db, et: EventType, zone: ZoneInfo, start: datetime, end: datetime,
            exclude_session_ids: Sequence[str] = ()) -> tuple[Counter, Counter]:
    """Bookings per local day and per ISO week, from sessions starting in [start, end)."""
    query = select(Session.start_at).join(Booking, Booking.id == Session.booking_id).where(
        Booking.event_type_id == et.id, Booking.status.in_(COUNTED_STATES),
        Session.status.in_(("held", "confirmed")), Session.start_at >= start, Session.start_at < end,
    )
    if exclude_session_ids:
        query = query.where(Session.id.not_in(list(exclude_session_ids)))
    rows = db.execute(query)
    days = Counter(s.astimezone(zone).date() for (s,) in rows)
    weeks: Counter = Counter()
    for day, n in days.items():
        weeks[_week(day)] += n
    return days, weeks


def _full(et: EventType, days: Counter, weeks: Counter, day: date) -> str | None:
    if et.max_bookings_per_day and days[day] >= et.max_bookings_per_day:
        return f"the day {day} already has its {et.max_bookings_per_day} booking(s) (max_bookings_per_day)"
    if et.max_bookings_per_week and weeks[_week(day)] >= et.max_bookings_per_week:
        return f"the week of {day} already has its {et.max_bookings_per_week} booking(s) (max_bookings_per_week)"
    return None


def _span(starts: Sequence[datetime]) -> tuple[datetime, datetime]:
    # Whole weeks around the starts, with a day of margin for the timezone.
    return min(starts) - timedelta(days=8), max(starts) + timedelta(days=8)


def filter_full(db, et: EventType, owner_tz: str, slots: list[datetime],
                exclude_session_ids: Sequence[str] = ()) -> list[datetime]:
    """Drop slots on full days and in full weeks (not counting `exclude_session_ids`: the
    session a reschedule would move)."""
    if not has_limits(et) or not slots:
        return slots
    zone = ZoneInfo(owner_tz)
    days, weeks = _counts(db, et, zone, *_span(slots), exclude_session_ids)
    return [s for s in slots if _full(et, days, weeks, s.astimezone(zone).date()) is None]


def check_limits(db, et: EventType, owner_tz: str, start: datetime, exclude_session_ids: Sequence[str] = (),
                 action: str = "booked") -> None:
    """Refuse a booking (or a reschedule: `exclude_session_ids` names the session being moved,
    `action` "moved there") over a limit. On PostgreSQL it first takes a transaction-scoped
    advisory lock per event type, so two concurrent bookings or moves cannot both take the last
    place (SQLite's BEGIN IMMEDIATE already serializes writers)."""
    if not has_limits(et):
        return
    if db.bind.dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_000_000 + et.id})
    zone = ZoneInfo(owner_tz)
    days, weeks = _counts(db, et, zone, *_span([start]), exclude_session_ids)
    reason = _full(et, days, weeks, start.astimezone(zone).date())
    if reason:
        raise OperationFailed("limit_reached", f"slot {to_utc_iso(start)} cannot be {action}: {reason}; choose another day")
