"""Calendar files: a package's .ics parses back into one event per session, updates keep the UID."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar
from tests.unit.notification_samples import sample_view, with_session

from services.notifications.ics import cancel_calendar, publish_calendar, reschedule_calendar

UTC = timezone.utc


def events(text: str) -> list:
    return list(Calendar.from_ical(text).walk("VEVENT"))


def test_package_file_parses_into_ten_events_with_distinct_uids():
    view = sample_view()
    cal = Calendar.from_ical(publish_calendar(view))
    assert str(cal["METHOD"]) == "PUBLISH"
    evs = list(cal.walk("VEVENT"))
    assert len(evs) == 10
    assert len({str(e["UID"]) for e in evs}) == 10
    assert [str(e["UID"]) for e in evs] == [s.uid for s in view.sessions]


def test_times_are_utc_and_right_across_the_dst_change():
    view = sample_view()
    text = publish_calendar(view)
    evs = events(text)
    for ev, session in zip(evs, view.sessions):
        start, end = ev.decoded("DTSTART"), ev.decoded("DTEND")
        assert start.utcoffset() == timedelta(0) and start == session.start and end == session.end
    # 09:00 New York is 14:00 UTC before 8 March 2026 and 13:00 UTC after it.
    assert "DTSTART:20260302T140000Z" in text and "DTSTART:20260304T140000Z" in text
    assert "DTSTART:20260309T130000Z" in text and "DTSTART:20260401T130000Z" in text
    assert evs[0].decoded("DTSTART") == datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert evs[2].decoded("DTSTART") == datetime(2026, 3, 9, 13, tzinfo=UTC)


def test_each_event_carries_its_own_details():
    view = sample_view()
    for ev, s in zip(events(publish_calendar(view)), view.sessions):
        assert f"session {s.number} of 10" in str(ev["SUMMARY"])
        assert str(ev["ORGANIZER"]) == "mailto:dana@example.com"
        assert ev["ORGANIZER"].params["CN"] == "Dana Reyes"
        assert "ATTENDEE" not in ev  # RFC 5546 3.2.1: not in a PUBLISH
        assert str(ev["LOCATION"]) == s.meeting.join_url
        assert str(ev["URL"]) == s.manage_url
        assert int(ev["SEQUENCE"]) == 0 and "DTSTAMP" in ev
        description = str(ev["DESCRIPTION"])
        for part in (s.meeting.join_url, s.meeting.meeting_id, s.meeting.password, s.meeting.dial_in,
                     s.conferencing_info_url, s.manage_url):
            assert part in description
        assert "HOSTSECRET" not in description


def test_owner_file_has_the_host_links_and_the_console_never_a_customer_token():
    view = sample_view()
    text = publish_calendar(view, "owner")
    for ev, s in zip(events(text), view.sessions):
        assert s.meeting.host_url in str(ev["DESCRIPTION"])
        assert s.owner_url in str(ev["DESCRIPTION"]) and str(ev["URL"]) == s.owner_url
    unfolded = text.replace("\r\n ", "")
    for s in view.sessions:
        assert s.manage_url not in unfolded and s.conferencing_info_url not in unfolded
    assert ".tok" not in unfolded and ".inf" not in unfolded  # no token of any kind


# RFC 5546 section 3.2.1 (PUBLISH, VEVENT): presence of each property. "1" must appear once,
# "0/1" at most once, "0+" any number, "0" never. Anything else is not allowed by this profile
# (X- properties aside).
PUBLISH_VEVENT = {
    "DTSTAMP": "1", "DTSTART": "1", "ORGANIZER": "1", "SUMMARY": "1", "UID": "1",
    "RECURRENCE-ID": "0/1", "SEQUENCE": "0/1", "ATTACH": "0+", "CATEGORIES": "0+", "CLASS": "0/1",
    "COMMENT": "0+", "CONTACT": "0/1", "CREATED": "0/1", "DESCRIPTION": "0/1", "DTEND": "0/1",
    "DURATION": "0/1", "EXDATE": "0+", "EXRULE": "0+", "GEO": "0/1", "LAST-MODIFIED": "0/1",
    "LOCATION": "0/1", "PRIORITY": "0/1", "RDATE": "0+", "RELATED-TO": "0+", "RESOURCES": "0/1",
    "RRULE": "0/1", "STATUS": "0/1", "TRANSP": "0/1", "URL": "0/1", "ATTENDEE": "0", "REQUEST-STATUS": "0",
}


@pytest.mark.parametrize("audience", ["customer", "owner"])
@pytest.mark.parametrize("build", ["package", "reschedule"])
def test_publish_files_follow_the_rfc_5546_property_table(audience, build):
    view = sample_view()
    if build == "package":
        text = publish_calendar(view, audience)
    else:
        text = reschedule_calendar(with_session(view, view.sessions[2].id, sequence=1), view.sessions[2].id, audience)
    cal = Calendar.from_ical(text)
    assert str(cal["METHOD"]) == "PUBLISH" and "PRODID" in cal and str(cal["VERSION"]) == "2.0"
    for ev in cal.walk("VEVENT"):
        names = [name for name, _ in ev.property_items(recursive=False) if name != "BEGIN" and name != "END"]
        for name in set(names):
            assert name in PUBLISH_VEVENT or name.startswith("X-"), f"{name} is not allowed in a PUBLISH VEVENT"
        for name, presence in PUBLISH_VEVENT.items():
            count = names.count(name)
            assert count == {"1": 1, "0": 0}.get(presence, count), f"{name} appears {count} times"
            if presence == "0/1":
                assert count <= 1, f"{name} appears {count} times"
        assert not ("DTEND" in names and "DURATION" in names)
        if int(ev["SEQUENCE"]) > 0:
            assert "SEQUENCE" in names
        assert str(ev["STATUS"]) in ("TENTATIVE", "CONFIRMED", "CANCELLED")
        expected = view.sessions[0].owner_url if audience == "owner" else None
        if audience == "owner":
            assert str(ev["URL"]) == expected and expected in str(ev["DESCRIPTION"])
        else:
            session = next(s for s in view.sessions if s.uid == str(ev["UID"]))
            assert str(ev["URL"]) == session.manage_url and session.manage_url in str(ev["DESCRIPTION"])


def test_cancelled_sessions_are_left_out_of_the_package_file():
    view = sample_view()
    view = with_session(view, view.sessions[0].id, status="cancelled")
    assert len(events(publish_calendar(view))) == 9


def test_cancel_file_has_same_uids_higher_sequence_and_cancelled_status():
    view = sample_view()
    published = {str(e["UID"]): int(e["SEQUENCE"]) for e in events(publish_calendar(view))}
    ids = [view.sessions[1].id, view.sessions[6].id]
    for sid in ids:  # the caller raises the sequence when it records the cancellation
        view = with_session(view, sid, status="cancelled", sequence=1)
    cal = Calendar.from_ical(cancel_calendar(view, ids))
    assert str(cal["METHOD"]) == "CANCEL"
    evs = list(cal.walk("VEVENT"))
    assert [str(e["UID"]) for e in evs] == [view.sessions[1].uid, view.sessions[6].uid]
    for ev in evs:
        assert str(ev["STATUS"]) == "CANCELLED"
        assert int(ev["SEQUENCE"]) > published[str(ev["UID"])]
        assert "ORGANIZER" in ev and "ATTENDEE" in ev


def test_reschedule_file_moves_the_same_event_with_a_higher_sequence():
    view = sample_view()
    s = view.sessions[4]
    moved = with_session(view, s.id, start=s.start + timedelta(days=2), end=s.end + timedelta(days=2), sequence=1)
    for method in ("PUBLISH", "REQUEST"):
        cal = Calendar.from_ical(reschedule_calendar(moved, s.id, method=method))
        assert str(cal["METHOD"]) == method
        (ev,) = cal.walk("VEVENT")
        assert str(ev["UID"]) == s.uid and int(ev["SEQUENCE"]) == 1 > s.sequence
        assert ev.decoded("DTSTART") == s.start + timedelta(days=2)


def test_unknown_session_is_an_error():
    with pytest.raises(ValueError):
        cancel_calendar(sample_view(), ["ss_nope"])


def test_names_with_line_breaks_stay_inside_their_property():
    view = sample_view(customer_name="Sam\r\nATTENDEE:mailto:evil@example.net", event_name="A\nB")
    text = publish_calendar(view)
    assert "mailto:evil@example.net" not in text.replace("\r\n ", "").split("CN=")[0]
    for ev in events(text):
        assert "ATTENDEE" not in ev
        assert "\n" not in str(ev["SUMMARY"])
    assert "\nATTENDEE" not in text
    # where an ATTENDEE belongs (CANCEL), the name stays inside its parameter
    cancelled = cancel_calendar(view, [s.id for s in view.sessions])
    for ev in events(cancelled):
        assert str(ev["ATTENDEE"]) == "mailto:sam@example.org"
    assert cancelled.count("\nATTENDEE") == 10
