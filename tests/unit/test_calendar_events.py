"""The owner's calendar event and the busy times read from a calendar: pure, no server."""
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from services.calendar.base import connection_for
from services.calendar.events import busy_intervals, owner_event
from services.errors import PermanentError
from services.notifications.ics import publish_calendar
from tests.unit.notification_samples import sample_view, with_session

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def parsed(ics: str) -> tuple[Calendar, Event]:
    calendar = Calendar.from_ical(ics)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


# -- the event written for a session ----------------------------------------------------------


def test_same_uid_sequence_and_times_as_the_emails_file():
    view = sample_view(3)
    emailed = {str(e["UID"]): e for e in Calendar.from_ical(publish_calendar(view, "owner", now=NOW)).walk("VEVENT")}
    for session in view.sessions:
        _, event = parsed(owner_event(view, session, now=NOW))
        original = emailed[session.uid]
        assert str(event["UID"]) == session.uid
        assert event["SEQUENCE"] == original["SEQUENCE"] == 0
        assert event["DTSTART"].dt == original["DTSTART"].dt == session.start
        assert event["DTEND"].dt == session.end


def test_times_are_written_in_utc():
    view = sample_view(1)
    ics = owner_event(view, view.sessions[0], now=NOW)
    assert "DTSTART:20260302T140000Z" in ics and "DTEND:20260302T150000Z" in ics
    assert "TZID" not in ics


def test_a_stored_calendar_object_has_no_method_and_invites_nobody():
    view = sample_view(1)
    calendar, event = parsed(owner_event(view, view.sessions[0], now=NOW))
    assert "METHOD" not in calendar
    assert "ATTENDEE" not in event and "ORGANIZER" not in event


def test_description_has_the_conferencing_details_host_link_and_customer():
    view = sample_view(2)
    session = view.sessions[1]
    _, event = parsed(owner_event(view, session, now=NOW))
    text = str(event["DESCRIPTION"])
    for expected in (session.meeting.join_url, session.meeting.password, session.meeting.host_url,
                     session.owner_url, "Sam Lee <sam@example.org>"):
        assert expected in text
    assert str(event["URL"]) == session.owner_url
    assert str(event["SUMMARY"]) == "Consultation (session 2 of 2) with Sam Lee"
    assert str(event["LOCATION"]) == session.meeting.join_url


def test_the_owner_calendar_never_carries_a_customer_link():
    """Anyone who reads a shared owner calendar must not be able to act as the customer."""
    view = sample_view(2)
    for session in view.sessions:
        ics = owner_event(view, session, now=NOW).replace("\r\n ", "")
        for customer_link in (s.manage_url for s in view.sessions):
            assert customer_link not in ics
        for info_link in (s.conferencing_info_url for s in view.sessions):
            assert info_link not in ics
        assert "/manage/" not in ics and "/meeting/" not in ics


def test_a_moved_session_carries_its_new_time_and_raised_sequence():
    view = sample_view(3)
    moved_start = view.sessions[1].start + timedelta(days=1)
    view = with_session(view, view.sessions[1].id, start=moved_start, end=moved_start + timedelta(hours=1), sequence=1)
    _, event = parsed(owner_event(view, view.sessions[1], now=NOW))
    assert event["SEQUENCE"] == 1 and event["DTSTART"].dt == moved_start


def test_names_with_line_breaks_stay_in_their_property():
    view = sample_view(1, customer_name="Sam\r\nX-INJECTED:1 Lee")
    ics = owner_event(view, view.sessions[0], now=NOW)
    assert "\nX-INJECTED" not in ics.replace("\r\n ", "")


@pytest.mark.parametrize("status", ["cancelled", "held", "released"])
def test_only_confirmed_sessions_are_written(status):
    view = sample_view(1)
    with pytest.raises(ValueError):
        owner_event(view, replace(view.sessions[0], status=status), now=NOW)


# -- busy times read from a calendar -----------------------------------------------------------


def event(uid: str = "dentist-1", start=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc), end=None, **props) -> Event:
    e = Event()
    e.add("uid", uid)
    if start is not None:
        e.add("dtstart", start)
    if end is not None:
        e.add("dtend", end)
    for name, value in props.items():
        e.add(name, value)
    return e


def test_an_appointment_is_busy_in_utc():
    start = datetime(2026, 3, 2, 10, 0, tzinfo=NEW_YORK)
    assert busy_intervals([event(start=start, end=start + timedelta(hours=1))], NEW_YORK) == [
        (datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc), datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc))]


def test_our_own_sessions_free_time_and_cancelled_events_are_not_busy():
    start = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
    end = start + timedelta(hours=1)
    events = [
        event("ss_abc@sessionpack", start, end),
        event("gym", start, end, transp="TRANSPARENT"),
        event("cancelled", start, end, status="CANCELLED"),
    ]
    assert busy_intervals(events, NEW_YORK) == []


def test_an_all_day_event_blocks_the_owners_whole_day():
    # 8 March 2026 is the US DST change: that day is 23 hours long in New York.
    [(start, end)] = busy_intervals([event(start=date(2026, 3, 8), end=date(2026, 3, 9))], NEW_YORK)
    assert start == datetime(2026, 3, 8, 5, 0, tzinfo=timezone.utc)
    assert end == datetime(2026, 3, 9, 4, 0, tzinfo=timezone.utc)
    [(start2, end2)] = busy_intervals([event(start=date(2026, 3, 8))], NEW_YORK)  # no DTEND: one day
    assert (start2, end2) == (start, end)


def test_floating_times_are_the_owners_wall_clock_and_duration_counts():
    [(start, end)] = busy_intervals([event(start=datetime(2026, 3, 2, 9, 0), duration=timedelta(minutes=90))], NEW_YORK)
    assert start == datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc) and end - start == timedelta(minutes=90)


def test_events_without_start_or_length_are_ignored():
    assert busy_intervals([event(start=None), event(start=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc))], NEW_YORK) == []


# -- the connection an owner's config names ----------------------------------------------------


def owner(calendar):
    return SimpleNamespace(id="kim", timezone="America/New_York", calendar=calendar)


def test_no_calendar_no_connection():
    assert connection_for(owner(None)) is None and connection_for(owner({})) is None


def test_the_password_comes_from_the_named_variable_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("KIM_CALDAV_PASSWORD", "s3cret")
    conn = connection_for(owner({"caldav_url": "https://cal.example.com/dav/kim/work",
                                 "username": "kim", "password_env": "KIM_CALDAV_PASSWORD"}))
    assert conn.password == "s3cret" and conn.url == "https://cal.example.com/dav/kim/work/"
    assert "s3cret" not in repr(conn)


def test_a_missing_password_variable_is_a_permanent_error_naming_it(monkeypatch):
    monkeypatch.delenv("KIM_CALDAV_PASSWORD", raising=False)
    with pytest.raises(PermanentError) as err:
        connection_for(owner({"caldav_url": "https://cal.example.com/", "username": "kim",
                              "password_env": "KIM_CALDAV_PASSWORD"}))
    assert err.value.code == "calendar_password_missing" and "KIM_CALDAV_PASSWORD" in err.value.message
