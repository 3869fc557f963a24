"""Plain read-only views of a booking for rendering emails and calendar files.

The booking service builds them from the database (`services.booking.views.booking_view`);
templates and the calendar-file builder only ever see these, never ORM rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MeetingView:
    provider: str
    join_url: str | None
    meeting_id: str | None = None
    password: str | None = None
    dial_in: str | None = None
    host_url: str | None = None  # owner's view only


@dataclass(frozen=True)
class SessionView:
    id: str
    number: int
    status: str  # confirmed | cancelled | held
    start: datetime  # aware UTC
    end: datetime  # aware UTC
    relative_cost_cents: int
    uid: str  # iCalendar UID, stable for the session's life
    sequence: int  # iCalendar SEQUENCE
    manage_url: str  # the session's own cancel/reschedule link (customer only)
    conferencing_info_url: str  # the session's read-only meeting page (customer only)
    meeting: MeetingView | None = None
    owner_url: str = ""  # the booking's page in the owner console (owner only)


@dataclass(frozen=True)
class PolicyView:
    cancel_allowed: bool
    cancel_min_notice_hours: float
    refund_percent: float
    reschedule_allowed: bool
    reschedule_min_notice_hours: float
    fee_percent: float


@dataclass(frozen=True)
class BookingView:
    id: str
    status: str
    event_name: str
    page_name: str
    duration_minutes: int
    sessions_per_booking: int
    customer_name: str
    customer_email: str
    customer_timezone: str
    owner_name: str
    owner_email: str
    owner_timezone: str
    currency: str
    price_cents: int
    paid_cents: int
    refunded_cents: int
    fees_cents: int
    policies: PolicyView
    sessions: list[SessionView] = field(default_factory=list)
    failure: dict | None = None
