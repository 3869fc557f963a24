"""The calendar files as the icalendar library builds them: what `services.notifications.ics`
produced before it wrote them from a template (kept here so the tests can hold the template to
it, file by file). Only the building is here; the wording (summary, description, link) is the
module's own."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from icalendar import Calendar, Event, vCalAddress, vText

from services.notifications.ics import PRODID, description, link, summary
from services.notifications.render import one_line
from services.notifications.views import BookingView, SessionView


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _address(email: str, name: str, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["CN"] = vText(one_line(name))
    for key, value in params.items():
        address.params[key] = vText(value)
    return address


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
    if method != "PUBLISH":
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


def calendar(view: BookingView, sessions: Iterable[SessionView], audience: str, now: datetime, status: str,
             method: str) -> str:
    """The file for `sessions`, as `services.notifications.ics._calendar` is asked for it."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    for session in sessions:
        cal.add_component(_event(view, session, audience, now, status, method))
    return cal.to_ical().decode("utf-8")


def fields(text: str) -> list[tuple]:
    """A file as icalendar reads it: per component, its properties in order as (name, parameters,
    value), values decoded (times as aware datetimes, TEXT unescaped)."""
    out = []
    for component in Calendar.from_ical(text).walk():
        props = []
        for name, value in component.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            params = dict(getattr(value, "params", {}) or {})
            decoded = component.decoded(name) if name in ("DTSTART", "DTEND", "DTSTAMP") else str(value)
            props.append((name, params, decoded))
        out.append((component.name, props))
    return out


def assert_same_file(text: str, expected: str) -> None:
    """`text` parses into the same components, properties, parameters and values as `expected`
    (the file icalendar built), and is the same file byte for byte."""
    assert fields(text) == fields(expected)
    assert text == expected
