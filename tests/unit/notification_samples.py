"""Sample booking views for notification tests: a realistic 10-session package.

The sessions are at 09:00 New York time on Mondays and Wednesdays from 2 March to 1 April 2026,
so they straddle the US DST change of 8 March 2026 (09:00 EST = 14:00 UTC before it, 09:00 EDT =
13:00 UTC after it) while Berlin, the customer's zone, only changes on 29 March.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from services.money import allocate
from services.notifications.views import BookingView, MeetingView, PolicyView, SessionView

NEW_YORK = ZoneInfo("America/New_York")
SESSION_DATES = [date(2026, 3, d) for d in (2, 4, 9, 11, 16, 18, 23, 25, 30)] + [date(2026, 4, 1)]


def local_nine(day: date) -> datetime:
    """09:00 New York on `day`, as an aware UTC datetime."""
    return datetime.combine(day, time(9, 0), NEW_YORK).astimezone(timezone.utc)


def sample_session(number: int, start: datetime, cost_cents: int, **overrides) -> SessionView:
    sid = f"ss_{number:02d}abc"
    token = f"{sid}.tok{number:02d}signature-abcdefghijkl"
    info = f"{sid}.inf{number:02d}signature-abcdefghijkl"
    session = SessionView(
        id=sid, number=number, status="confirmed", start=start, end=start + timedelta(minutes=60),
        relative_cost_cents=cost_cents, uid=f"{sid}@sessionpack", sequence=0,
        manage_url=f"https://book.example.com/manage/{token}",
        conferencing_info_url=f"https://book.example.com/meeting/{info}",
        owner_url="https://book.example.com/owner/bookings/bk_sample01",
        meeting=MeetingView(
            provider="zoom", join_url=f"https://zoom.us/j/8{number:09d}?pwd=abc{number}",
            meeting_id=f"8{number:09d}", password=f"pw{number:04d}", dial_in="+1 646 558 8656",
            host_url=f"https://zoom.us/s/8{number:09d}?zak=HOSTSECRET{number}",
        ),
    )
    return replace(session, **overrides)


def sample_policies(**overrides) -> PolicyView:
    base = PolicyView(cancel_allowed=True, cancel_min_notice_hours=24, refund_percent=50,
                      reschedule_allowed=True, reschedule_min_notice_hours=24, fee_percent=10)
    return replace(base, **overrides)


def sample_view(sessions: int = 10, price_cents: int = 80000, **overrides) -> BookingView:
    """A confirmed package of `sessions` sessions (up to 10) for `price_cents`, fully paid.

    Keyword overrides replace BookingView fields (customer_name, policies, status, ...).
    """
    costs = allocate(price_cents, sessions)
    view = BookingView(
        id="bk_sample01", status="confirmed", event_name="Consultation",
        page_name="Coaching with Dana", duration_minutes=60, sessions_per_booking=sessions,
        customer_name="Sam Lee", customer_email="sam@example.org", customer_timezone="Europe/Berlin",
        owner_name="Dana Reyes", owner_email="dana@example.com", owner_timezone="America/New_York",
        currency="USD", price_cents=price_cents, paid_cents=price_cents, refunded_cents=0, fees_cents=0,
        policies=sample_policies(),
        sessions=[sample_session(i + 1, local_nine(day), costs[i]) for i, day in enumerate(SESSION_DATES[:sessions])],
    )
    return replace(view, **overrides)


def with_session(view: BookingView, session_id: str, **changes) -> BookingView:
    """The view with one session changed (a raised sequence, a new time, a cancelled status)."""
    return replace(view, sessions=[replace(s, **changes) if s.id == session_id else s for s in view.sessions])
