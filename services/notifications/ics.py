"""Calendar files (RFC 5545 / iTIP) for a booking's sessions, written from a template.

Every session is its own VEVENT with a UID that stays the same for the session's whole life, so
opening the package's file creates N separate events, and a later reschedule or cancellation
file (same UID, higher SEQUENCE) updates or removes exactly that one event. The caller raises
`SessionView.sequence` before asking for a reschedule or cancel file; this module only writes it.

Each method carries the properties RFC 5546 (iTIP) section 3.2 lists for it: a PUBLISH event has
DTSTAMP, DTSTART, ORGANIZER, SUMMARY, UID and SEQUENCE and **no ATTENDEE** (3.2.1: presence 0);
REQUEST (3.2.2) and CANCEL (3.2.5) name the customer as ATTENDEE. DESCRIPTION and URL carry the
recipient's own link: the session's manage link in the customer's file, the booking's page in the
owner console in the owner's file (never a customer token).

The files are written as text, field by field, instead of through the icalendar library's
objects (which were 13 % of a booking's worker time): TEXT values escaped (RFC 5545 3.3.11),
parameter values escaped (RFC 6868) and quoted, lines folded at 75 octets, CRLF. The output is
the same, byte for byte, as icalendar 7 writes for these events (properties in its order:
SUMMARY, DTSTART, DTEND, DTSTAMP, UID, SEQUENCE, then the rest alphabetically). The tests parse
every file with icalendar and compare it with the file icalendar builds
(tests/unit/ics_reference.py).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterable

from .render import one_line, session_details
from .views import BookingView, SessionView

PRODID = "-//sessionpack//sessionpack 1.0//EN"


def _stamp(moment: datetime) -> str:
    """A UTC DATE-TIME: 20260302T140000Z (seconds, no fraction)."""
    u = moment.astimezone(timezone.utc)
    return f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}Z"


def _text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon and comma escaped, every line break
    (CRLF, LF or a lone CR) written as \\n."""
    if not _TEXT_SPECIAL.search(value):
        return value
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


_TEXT_SPECIAL = re.compile(r"[\\;,\r\n]")
_PARAM_SPECIAL = re.compile(r'[\^\r\n"]')
_PARAM_QUOTE = re.compile("[,;:\u2019]")


def _param(value: str, quote_also: str = "") -> str:
    """A parameter value: RFC 6868 escapes (^^, ^n, ^'), double-quoted when it holds , ; : or a
    right single quote, or (CN) a space or an apostrophe, as icalendar quotes them."""
    escaped = value
    if _PARAM_SPECIAL.search(value):
        escaped = (value.replace("^", "^^").replace("\r\n", "^n").replace("\n", "^n").replace("\r", "^n")
                   .replace('"', "^'"))
    if _PARAM_QUOTE.search(escaped) or any(c in value for c in quote_also):
        return f'"{escaped}"'
    return escaped


def _address(name: str, email: str, params: str = "") -> str:
    """An ORGANIZER or ATTENDEE's parameters and value: 'CN="Dana Reyes":mailto:dana@example.com'.
    `params` are further parameters (';CUTYPE=...'), sorted after CN as icalendar sorts them."""
    if "\r" in email or "\n" in email:
        raise ValueError(f"a calendar address may not contain CR or LF: {email!r}")
    cn = _param(one_line(name), _CN_QUOTE_ALSO)
    return f"CN={cn}{params}:mailto:{email}"


_CN_QUOTE_ALSO = " '"


def _fold(line: str) -> str:
    """A content line folded as icalendar folds it: pieces of at most 74 octets joined by CRLF
    and a space, never splitting a character, and never ending a piece with the backslash or
    caret that starts an escape (it moves to the next piece)."""
    if line.isascii():
        if len(line) < 75:
            return line
        pieces, start, n = [], 0, len(line)
        while n - start > 74:
            end = start + 74
            if line[end - 1] in "\\^":
                end -= 1
            pieces.append(line[start:end])
            start = end
        pieces.append(line[start:])
        return "\r\n ".join(pieces)
    if len(line.encode("utf-8")) < 75:
        return line
    pieces, current, count = [], [], 0
    for char in line:
        size = len(char.encode("utf-8"))
        if current and count + size >= 75:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                pieces.append("".join(current))
                current, count = [carried], 1
            else:
                pieces.append("".join(current))
                current, count = [], 0
        current.append(char)
        count += size
    if current:
        pieces.append("".join(current))
    return "\r\n ".join(pieces)


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


def _event(view: BookingView, session: SessionView, audience: str, stamp: str, status: str,
           method: str, organizer: str, attendee: str | None) -> list[str]:
    lines = [
        f"SUMMARY:{_text(one_line(summary(view, session)))}",
        f"DTSTART:{_stamp(session.start)}",
        f"DTEND:{_stamp(session.end)}",
        f"DTSTAMP:{stamp}",
        f"UID:{_text(session.uid)}",
        f"SEQUENCE:{int(session.sequence)}",
    ]
    if method != "PUBLISH":  # RFC 5546 3.2.1: ATTENDEE must not appear in a PUBLISH
        lines.append(attendee)
    lines.append(f"DESCRIPTION:{_text(description(view, session, audience))}")
    meeting = session.meeting
    if meeting is not None and meeting.join_url:
        lines.append(f"LOCATION:{_text(meeting.join_url)}")
    lines += [organizer, f"STATUS:{status}", "TRANSP:OPAQUE"]
    url = link(session, audience)
    if url:
        lines.append(f"URL:{url}")
    return ["BEGIN:VEVENT", *(_fold(line) for line in lines), "END:VEVENT"]


def _calendar(view: BookingView, sessions: Iterable[SessionView], audience: str, now: datetime,
              status: str, method: str) -> str:
    stamp = _stamp(now)
    organizer = f"ORGANIZER;{_address(view.owner_name, view.owner_email)}"
    attendee = None
    if method != "PUBLISH":
        attendee = "ATTENDEE;" + _address(view.customer_name, view.customer_email,
                                          ";CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN",
             f"METHOD:{_text(method)}"]
    for session in sessions:
        lines += _event(view, session, audience, stamp, status, method, organizer, attendee)
    lines.append("END:VCALENDAR\r\n")
    return "\r\n".join(lines)


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
    return _calendar(view, active, audience, now, "CONFIRMED", "PUBLISH")


def reschedule_calendar(view: BookingView, session_id: str, audience: str = "customer", *,
                        method: str = "PUBLISH", now: datetime | None = None) -> str:
    """The moved session's event at its new time: same UID, the (already raised) SEQUENCE.

    PUBLISH by default, like the original file, so calendar apps update the imported event in
    place; pass method='REQUEST' for clients that only apply updates sent as invitations.
    """
    now = now or datetime.now(timezone.utc)
    (session,) = _sessions(view, [session_id])
    return _calendar(view, [session], audience, now, "CONFIRMED", method)


def cancel_calendar(view: BookingView, session_ids: Iterable[str], audience: str = "customer", *,
                    now: datetime | None = None) -> str:
    """METHOD:CANCEL, one VEVENT per cancelled session with STATUS:CANCELLED and its UID."""
    now = now or datetime.now(timezone.utc)
    sessions = _sessions(view, list(session_ids))
    return _calendar(view, sessions, audience, now, "CANCELLED", "CANCEL")
