"""Calendar files (RFC 5545 / iTIP) for a booking's sessions, built with the icalendar library.

Every session is its own VEVENT with a UID that stays the same for the session's whole life, so
opening the package's file creates N separate events, and a later reschedule or cancellation
file (same UID, higher SEQUENCE) updates or removes exactly that one event. The caller raises
`SessionView.sequence` before asking for a reschedule or cancel file; this module only writes it.

Each method carries the properties RFC 5546 (iTIP) section 3.2 lists for it: a PUBLISH event has
DTSTAMP, DTSTART, ORGANIZER, SUMMARY, UID and SEQUENCE and **no ATTENDEE** (3.2.1: presence 0);
REQUEST (3.2.2) and CANCEL (3.2.5) name the customer as ATTENDEE. DESCRIPTION and URL carry the
recipient's own link: the session's manage link in the customer's file, the booking's page in the
owner console in the owner's file (never a customer token).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from icalendar import Calendar, Event, vCalAddress, vText

from .render import one_line, session_details
from .views import BookingView, SessionView

PRODID = "-//sessionpack//sessionpack 1.0//EN"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _address(email: str, name: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["CN"] = vText(one_line(name))
    for key, value in params.items():
        address.params[key] = vText(value)
    return address


def summary(view: BookingView, session: SessionView) -> str:
    """'Consultation (session 3 of 10)' for a package, the event name alone for one session."""
    if view.sessions_per_booking > 1:
        return f"{view.event_name} (session {session.number} of {view.sessions_per_booking})"
    return view.event_name


def description(view: BookingView, session: SessionView, audience: str) -> str:
    """The full conferencing information and the recipient's link (the customer's manage link or
    the owner console's page of the booking), as plain text."""
    other = view.customer_name if audience == "owner" else view.owner_name
    lines = [f"{summary(view, session)} with {one_line(other)}", ""]
    lines += [f"{d.label}: {d.value}" for d in session_details(session, audience)]
    return "\n".join(lines)


def link(session: SessionView, audience: str) -> str:
    """The event's URL: where its recipient manages it."""
    return session.owner_url if audience == "owner" else session.manage_url


def _event(view: BookingView, session: SessionView, audience: str, now: datetime, status: str,
           method: str) -> Event:
    event = Event()
    event.add("uid", session.uid)
    event.add("dtstamp", _utc(now))
    event.add("dtstart", _utc(session.start))
    event.add("dtend", _utc(session.end))
    event.add("sequence", session.sequence)
    event.add("summary", one_line(summary(view, session)))
    event.add("status", status)
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(view.owner_email, view.owner_name))
    if method != "PUBLISH":  # RFC 5546 3.2.1: ATTENDEE must not appear in a PUBLISH
        event.add("attendee", _address(view.customer_email, view.customer_name,
                                       ROLE="REQ-PARTICIPANT", CUTYPE="INDIVIDUAL"))
    meeting = session.meeting
    if meeting is not None and meeting.join_url:
        event.add("location", meeting.join_url)
    event.add("description", description(view, session, audience))
    url = link(session, audience)
    if url:
        event.add("url", url)
    return event


def _calendar(method: str, events: Iterable[Event]) -> str:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    for event in events:
        cal.add_component(event)
    return cal.to_ical().decode("utf-8")


def _sessions(view: BookingView, session_ids: Iterable[str]) -> list[SessionView]:
    by_id = {s.id: s for s in view.sessions}
    missing = [sid for sid in session_ids if sid not in by_id]
    if missing:
        raise ValueError(f"sessions {missing} are not part of booking {view.id}")
    return [by_id[sid] for sid in session_ids]


def publish_calendar(view: BookingView, audience: str = "customer", *, now: datetime | None = None) -> str:
    """METHOD:PUBLISH with one VEVENT per confirmed session (cancelled ones are left out).

    `audience='owner'` puts the host link and the owner console's link in each DESCRIPTION; the
    customer's file never has the host link, the owner's never has a customer token.
    """
    now = now or datetime.now(timezone.utc)
    active = [s for s in view.sessions if s.status == "confirmed"]
    return _calendar("PUBLISH", (_event(view, s, audience, now, "CONFIRMED", "PUBLISH") for s in active))


def reschedule_calendar(view: BookingView, session_id: str, audience: str = "customer", *,
                        method: str = "PUBLISH", now: datetime | None = None) -> str:
    """The moved session's event at its new time: same UID, the (already raised) SEQUENCE.

    PUBLISH by default, like the original file, so calendar apps update the imported event in
    place; pass method='REQUEST' for clients that only apply updates sent as invitations.
    """
    now = now or datetime.now(timezone.utc)
    (session,) = _sessions(view, [session_id])
    return _calendar(method, [_event(view, session, audience, now, "CONFIRMED", method)])


def cancel_calendar(view: BookingView, session_ids: Iterable[str], audience: str = "customer", *,
                    now: datetime | None = None) -> str:
    """METHOD:CANCEL, one VEVENT per cancelled session with STATUS:CANCELLED and its UID."""
    now = now or datetime.now(timezone.utc)
    sessions = _sessions(view, list(session_ids))
    return _calendar("CANCEL", (_event(view, s, audience, now, "CANCELLED", "CANCEL") for s in sessions))
