"""The GoToMeeting adapter against the loopback GoTo: array answers, reschedule, cancel, find."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.conferencing.base import MeetingRequest
from services.conferencing.goto import GoToMeetingProvider
from services.errors import TransientError
from tests.peers import adapter_fixture, peer_fixture
from tests.peers.goto import GoToPeer

pytestmark = pytest.mark.integration

REQUEST = MeetingRequest("ss_goto1", "Consultation, session 3 of 5",
                         datetime(2026, 12, 11, 9, 0, tzinfo=timezone.utc), 90, "Europe/Berlin")


peer = peer_fixture(GoToPeer)
goto = adapter_fixture(GoToMeetingProvider, "goto")


def test_create_sends_the_documented_fields_in_utc_and_reads_the_array_answer(goto, peer):
    made = goto.create(REQUEST)
    (call,) = peer.calls("POST", "/G2M/rest/meetings")
    assert call.headers["authorization"] == "Bearer goto-access-token"
    assert call.json == {
        "subject": REQUEST.topic, "starttime": "2026-12-11T09:00:00Z", "endtime": "2026-12-11T10:30:00Z",
        "passwordrequired": False, "conferencecallinfo": "Hybrid", "timezonekey": "", "meetingtype": "scheduled",
    }
    assert made.external_id in peer.meetings
    assert made.join_url == f"https://global.gotomeeting.com/join/{made.external_id}"
    assert made.dial_in.startswith("United States: +1 (571) 317-3122; Access Code: ")
    assert made.password is None and made.host_url is None


def test_an_answer_that_is_not_an_array_is_malformed(goto, peer):
    peer.fail_next(201, body={"meetingid": 1, "joinURL": "https://global.gotomeeting.com/join/1"})
    with pytest.raises(TransientError) as caught:
        goto.create(REQUEST)
    assert caught.value.code == "gotomeeting_malformed_response" and "JSON array" in caught.value.message


def test_reschedule_puts_the_new_times(goto, peer):
    made = goto.create(REQUEST)
    moved = replace(REQUEST, start=REQUEST.start + timedelta(days=1, hours=2))
    assert goto.update(made.external_id, moved) is None
    (put,) = peer.calls("PUT", r"/G2M/rest/meetings/\d+")
    assert (put.json["starttime"], put.json["endtime"]) == ("2026-12-12T11:00:00Z", "2026-12-12T12:30:00Z")
    assert peer.meetings[made.external_id]["startTime"] == "2026-12-12T11:00:00.+0000"


def test_find_matches_subject_and_start_time(goto, peer):
    goto.create(replace(REQUEST, start=REQUEST.start + timedelta(days=1)))  # same subject, other day
    made = goto.create(REQUEST)
    found = goto.find(REQUEST)
    assert found is not None and found.external_id == made.external_id and found.join_url == made.join_url
    assert goto.find(replace(REQUEST, start=REQUEST.start + timedelta(days=2))) is None


def test_check_lists_upcoming_meetings(goto, peer):
    goto.check()
    assert peer.calls("GET", "/G2M/rest/upcomingMeetings")
