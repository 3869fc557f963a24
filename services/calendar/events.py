"""What goes into an owner's calendar and what comes out of it, without any I/O.

Writing: the session's event is the one the emails' calendar files carry (built by
`notifications.ics`, owner's view, so with the host link), turned into a CalDAV calendar object.
Reading: events become busy intervals, leaving out our own sessions and what does not block time.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vText

from ..availability import Interval
from ..notifications.ics import publish_calendar, summary
from ..notifications.render import one_line
from ..notifications.views import BookingView, SessionView

# Every session's UID ends the same way (`calendar_uid`): how we recognise our own events
# among the owner's appointments.
SESSION_UID_SUFFIX = "@sessionpack"

# Scheduling properties left out of the owner's copy: with an ORGANIZER and ATTENDEEs, servers
# that implement CalDAV scheduling (Nextcloud, iCloud, Google) would mail the customer an
# invitation of their own, on top of our confirmation email.
_SCHEDULING_PROPERTIES = ("ORGANIZER", "ATTENDEE")


def calendar_uid(session_id: str) -> str:
    """A session's UID, stored on its row: the same in every calendar file and CalDAV event."""
    return f"{session_id}{SESSION_UID_SUFFIX}"


def is_session_uid(uid: str) -> bool:
    return uid.endswith(SESSION_UID_SUFFIX)


def owner_event(view: BookingView, session: SessionView, now: datetime | None = None) -> str:
    """The session as a calendar object resource (RFC 4791) for the owner's own calendar.

    Same UID and SEQUENCE as in the emails' files, times in UTC, the conferencing details and
    the host link in the description; no METHOD (not allowed in a stored calendar object).
    """
    if session.status != "confirmed":
        raise ValueError(f"session {session.id} is {session.status}: only confirmed sessions are written")
    calendar = Calendar.from_ical(publish_calendar(replace(view, sessions=[session]), "owner", now=now))
    calendar.pop("METHOD", None)
    (event,) = calendar.walk("VEVENT")
    for name in _SCHEDULING_PROPERTIES:
        event.pop(name, None)
    # The owner reads their calendar by who is coming; the customer's address replaces ATTENDEE.
    event["SUMMARY"] = vText(one_line(f"{summary(view, session)} with {view.customer_name}"))
    customer = one_line(f"Customer: {view.customer_name} <{view.customer_email}>")
    event["DESCRIPTION"] = vText(f"{event['DESCRIPTION']}\n{customer}")
    return calendar.to_ical().decode("utf-8")


def _utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    """A DTSTART/DTEND value as aware UTC. All-day dates and floating times are the owner's
    wall clock: an all-day appointment blocks that day where the owner lives."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(timezone.utc)
    return datetime.combine(value, time(), zone).astimezone(timezone.utc)


def event_span(event: Event, zone: ZoneInfo) -> Interval | None:
    """The time an event occupies, or None when it has no start or no length."""
    try:
        start, end = _utc(event.start, zone), _utc(event.end, zone)
    except ValueError:  # no DTSTART (icalendar's IncompleteComponent) or an unusable value
        return None
    return (start, end) if end > start else None


def blocks_time(event: Event) -> bool:
    """Whether an event makes the owner busy: not one of our sessions (counted from the
    database, and a session being moved must not block its own new time), not marked free,
    not cancelled."""
    if is_session_uid(str(event.get("UID", ""))):
        return False
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return False
    return str(event.get("STATUS", "")).upper() != "CANCELLED"


def busy_intervals(events: Iterable[Event], zone: ZoneInfo) -> list[Interval]:
    """The busy intervals of a time-range query's (expanded) events."""
    spans = (event_span(e, zone) for e in events if blocks_time(e))
    return sorted(span for span in spans if span is not None)
