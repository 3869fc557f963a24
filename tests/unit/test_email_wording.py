"""Emails read naturally (issue 14): a subject never says the number of sessions twice, a
cancellation's refund lines add up (the total counts the refund on its way), and a meeting id that
is only the room in the join link is not shown as something to read out."""
from __future__ import annotations

from dataclasses import replace

import pytest
from tests.unit.notification_samples import sample_view, with_session

from services.notifications import compose
from services.notifications.render import without_count
from services.notifications.views import MeetingView


def by_kind(specs):
    return {spec.kind: spec for spec in specs}


@pytest.mark.parametrize("name, n, expected", [
    ("Coaching package, 3 sessions", 3, "Coaching package"),
    ("Coaching package (3 sessions)", 3, "Coaching package"),
    ("Consultation - 10 sessions", 10, "Consultation"),
    ("Consultation, 10 Sessions", 10, "Consultation"),
    ("Coaching package, 3 sessions", 5, "Coaching package, 3 sessions"),  # another number: part of the name
    ("3 sessions", 3, "3 sessions"),  # nothing would be left
    ("Intro call", 1, "Intro call"),
])
def test_without_count(name, n, expected):
    assert without_count(name, n) == expected


def test_the_demo_confirmation_subject_says_the_count_once():
    view = sample_view(3, 15000, event_name="Coaching package, 3 sessions", owner_name="Dana Demo")
    specs = by_kind(compose.booking_confirmed(view))
    assert specs["booking_confirmed_customer"].subject == "Confirmed: Coaching package with Dana Demo (3 sessions)"
    assert specs["booking_confirmed_owner"].subject == "New booking: Sam Lee, Coaching package (3 sessions)"


def test_a_name_without_a_count_gets_it_once():
    view = sample_view(10, 80000, event_name="Consultation")
    specs = by_kind(compose.booking_confirmed(view))
    assert specs["booking_confirmed_customer"].subject == "Confirmed: Consultation with Dana Reyes (10 sessions)"


def test_change_subjects_do_not_repeat_the_count():
    view = sample_view(3, 15000, event_name="Coaching package, 3 sessions")
    first = view.sessions[0]
    cancelled = with_session(view, first.id, status="cancelled", sequence=1)
    subjects = [s.subject for s in compose.sessions_cancelled(cancelled, [first.id], 2500, "chg-1")]
    subjects += [s.subject for s in compose.session_rescheduled(view, view.sessions[1].id, first.start, first.end,
                                                                500, "chg-2")]
    assert subjects and all("3 sessions" not in s for s in subjects), subjects
    assert subjects[0] == "Cancelled: session 1 of 3 of Coaching package"


def test_a_cancellation_shows_this_refund_and_the_total_including_it():
    # $150 for 3 sessions, an earlier $25 refund done, this cancellation refunds $25 more.
    view = sample_view(3, 15000, refunded_cents=2500)
    second = view.sessions[1]
    cancelled = with_session(view, second.id, status="cancelled", sequence=1)
    for spec in compose.sessions_cancelled(cancelled, [second.id], 2500, "chg-3"):
        assert "Refund for this cancellation: $25.00" in spec.text
        assert "Refunded in total, with this one: $50.00" in spec.text
        assert "Refunded so far" not in spec.text and "$0.00" not in spec.text
        assert "Refund for this cancellation" in spec.html and "$50.00" in spec.html


def test_a_first_cancellation_never_says_nothing_was_refunded_yet():
    view = sample_view(3, 15000)
    first = view.sessions[0]
    spec = by_kind(compose.sessions_cancelled(with_session(view, first.id, status="cancelled", sequence=1),
                                              [first.id], 2500, "chg-4"))["sessions_cancelled_customer"]
    assert "Refund for this cancellation: $25.00" in spec.text and "Refunded in total, with this one: $25.00" in spec.text


def test_a_cancellation_without_refund_says_so():
    view = sample_view(3, 15000, refunded_cents=2500)
    first = view.sessions[0]
    spec = by_kind(compose.sessions_cancelled(with_session(view, first.id, status="cancelled", sequence=1),
                                              [first.id], 0, "chg-5"))["sessions_cancelled_customer"]
    assert "Refund for this cancellation: none" in spec.text and "Refunded in total: $25.00" in spec.text


def rooms(view, provider, join, meeting_id):
    return replace(view, sessions=[replace(s, meeting=MeetingView(provider=provider, join_url=join(s), meeting_id=meeting_id(s),
                                                                  password=None, dial_in=None, host_url=None))
                                   for s in view.sessions])


@pytest.mark.parametrize("provider, join", [
    ("builtin", lambda s: f"https://book.example.com/room/{s.id}0123456789abcdef0123456789"),
    ("jitsi", lambda s: f"https://meet.jit.si/sessionpack-{s.id}0123456789abcdef0123456789"),
])
def test_a_room_id_that_is_the_join_link_is_not_shown_as_a_meeting_id(provider, join):
    view = rooms(sample_view(2, 0), provider, join, lambda s: join(s).rsplit("/", 1)[-1])
    for spec in compose.booking_confirmed(view):
        assert "Meeting ID" not in spec.text and "Meeting ID" not in spec.html
        assert join(view.sessions[0]) in spec.text


def test_a_meeting_id_to_dial_stays():
    view = sample_view(2, 0)  # Zoom: a numeric id a person reads out on the phone
    spec = by_kind(compose.booking_confirmed(view))["booking_confirmed_customer"]
    assert f"Meeting ID: {view.sessions[0].meeting.meeting_id}" in spec.text
