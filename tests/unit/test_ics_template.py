"""The calendar files written from a template are the files icalendar builds: parsed with
icalendar, the same components, properties, parameters and values, and the same bytes, for the
customer's and the owner's copy, 1, 10 and 20 sessions, package, reschedule and cancel files, and
names and details that need escaping, quoting or folding (commas, semicolons, line breaks,
backslashes, carets, quotes, non-ASCII, long lines)."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from tests.unit.ics_reference import assert_same_file, calendar
from tests.unit.notification_samples import sample_session, sample_view

from services.notifications import ics
from services.notifications.views import MeetingView

NOW = datetime(2026, 2, 1, 8, 30, 15, 123456, tzinfo=timezone.utc)


def package(sessions: int, **overrides):
    """A package of up to 20 sessions, a week apart from 2 March 2026 at 14:00 UTC."""
    view = sample_view(**overrides)
    start = datetime(2026, 3, 2, 14, tzinfo=timezone.utc)
    return replace(view, sessions_per_booking=sessions,
                   sessions=[sample_session(i + 1, start + timedelta(days=7 * i), 1000) for i in range(sessions)])


def every_file(view):
    """(what, file, the same file built with icalendar) for every file the module writes."""
    ids = [s.id for s in view.sessions]
    out = []
    for audience in ("customer", "owner"):
        out.append((f"publish {audience}", ics.publish_calendar(view, audience, now=NOW),
                    calendar(view, [s for s in view.sessions if s.status == "confirmed"], audience, NOW,
                             "CONFIRMED", "PUBLISH")))
        for method in ("PUBLISH", "REQUEST"):
            moved = view.sessions[-1]
            out.append((f"reschedule {method} {audience}",
                        ics.reschedule_calendar(view, moved.id, audience, method=method, now=NOW),
                        calendar(view, [moved], audience, NOW, "CONFIRMED", method)))
        chosen = ids[::3]
        out.append((f"cancel {audience}", ics.cancel_calendar(view, chosen, audience, now=NOW),
                    calendar(view, [s for s in view.sessions if s.id in chosen], audience, NOW, "CANCELLED",
                             "CANCEL")))
    return out


NAMES = {
    "plain": {},
    "commas and semicolons": dict(customer_name="Lee, Sam; Jr.", owner_name="Reyes; Dana, PhD",
                                  event_name="Coaching; deep, focused work"),
    "line breaks": dict(customer_name="Sam\r\nATTENDEE:mailto:evil@example.net", owner_name="Dana\nReyes",
                        event_name="A\rB\nC"),
    "quotes and colons": dict(customer_name='Sam "the man" O\'Lee: ^caret^', owner_name="it\u2019s Dana",
                              event_name='"Quoted": ^x^'),
    "backslashes": dict(customer_name="C:\\Users\\sam", owner_name="Dana \\ Reyes", event_name="a\\;b\\,c\\"),
    "non-ASCII": dict(customer_name="Zo\u00eb Sch\u00f6n-\u0141\u00f3d\u017a", owner_name="\u5c71\u7530 \u592a\u90ce",
                      event_name="S\u00e9ance d\u2019\u00e9t\u00e9 \U0001f600 \u2013 fr\u00fch"),
    "long lines": dict(customer_name="Maximilian " * 12, owner_name="Dr. " + "\u00e9" * 90,
                       event_name=("Very long consultation title, with commas; and semicolons " * 4).strip()),
}


@pytest.mark.parametrize("sessions", [1, 10, 20])
@pytest.mark.parametrize("names", list(NAMES))
def test_every_file_is_the_file_icalendar_builds(sessions, names):
    view = package(sessions, **NAMES[names])
    for what, text, expected in every_file(view):
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
        assert len(Calendar.from_ical(text).walk("VEVENT")) == len(Calendar.from_ical(expected).walk("VEVENT"))
        assert_same_file(text, expected)
        for line in text.split("\r\n"):
            assert len(line.encode()) <= 75, (what, line)


@pytest.mark.parametrize("meeting", ["none", "no join link", "room", "details with line breaks"])
def test_sessions_without_a_meeting_or_links_are_the_same_files(meeting):
    meetings = {
        "none": None,
        "no join link": MeetingView(provider="none", join_url=None),
        "room": MeetingView(provider="builtin", join_url="https://book.example.com/room/r_1,2;3",
                            meeting_id="r_1,2;3"),
        "details with line breaks": MeetingView(provider="webex", join_url="https://x.webex.com/j?a=1,2",
                                                meeting_id="12 34", password="p;w,\\d\r\nx",
                                                dial_in="+1 555\n+44 20\r+49", host_url="https://h/\u00e9"),
    }
    view = package(3)
    view = replace(view, sessions=[replace(s, meeting=meetings[meeting], owner_url="", sequence=i)
                                   for i, s in enumerate(view.sessions)])
    for _what, text, expected in every_file(view):
        assert_same_file(text, expected)


ALPHABET = "ab Z09:;,\\^\"'\u2019\r\n\t.-\u00e9\u00df\u4e2d\U0001f600\u2028/@?=&"


def test_random_names_and_details_are_the_same_files():
    """Random strings over the characters that need escaping, quoting or care when folding
    (multi-byte characters at every position of the 75-octet boundary)."""
    rng = random.Random(20261201)

    def text(n: int) -> str:
        while True:
            value = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, n)))
            if "\\N" not in value:  # see test_a_backslash_before_n_stays_a_backslash
                return value

    for _ in range(150):
        view = package(rng.choice([1, 2, 5]), customer_name=text(120), owner_name=text(120), event_name=text(200))
        view = replace(view, sessions=[replace(s, meeting=replace(s.meeting, password=text(90), dial_in=text(90)))
                                       for s in view.sessions])
        for _what, written, expected in every_file(view):
            assert_same_file(written, expected)


def test_a_backslash_before_n_stays_a_backslash(monkeypatch):
    """The one place the template differs from icalendar: icalendar turns a backslash followed by
    N in a TEXT value into a line break before escaping; RFC 5545 escapes the backslash, so the
    name reads back as it was typed."""
    monkeypatch.setattr(ics, "_calendar", ics._calendar.unchecked)  # conftest compares with icalendar's
    view = package(1, event_name="C:\\Notes")
    text = ics.publish_calendar(view, now=NOW)
    (event,) = Calendar.from_ical(text).walk("VEVENT")
    assert str(event["SUMMARY"]) == "C:\\Notes" and "SUMMARY:C:\\\\Notes\r\n" in text
