"""The Webex adapter against the loopback Webex: the meeting's shape, reschedule, cancel, find."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.conferencing.base import MeetingRequest
from services.conferencing.webex import WebexProvider
from services.errors import PermanentError
from tests.peers import FAST_RETRY, adapter_fixture, peer_fixture
from tests.peers.webex import WebexPeer

pytestmark = pytest.mark.integration

REQUEST = MeetingRequest("ss_webex1", "Coaching with Dana, session 2 of 4",
                         datetime(2026, 12, 9, 14, 30, tzinfo=timezone.utc), 45, "Europe/Berlin")


peer = peer_fixture(WebexPeer)
webex = adapter_fixture(WebexProvider, "webex")


def test_create_sends_title_start_end_and_zone_with_the_bearer_token(webex, peer):
    made = webex.create(REQUEST)
    (call,) = peer.calls("POST", "/v1/meetings")
    assert call.headers["authorization"] == "Bearer webex-bot-token"
    body = call.json
    assert body["title"] == REQUEST.topic and body["timezone"] == "Europe/Berlin"
    assert (body["start"], body["end"]) == ("2026-12-09T14:30:00Z", "2026-12-09T15:15:00Z")
    assert "ss_webex1" in body["agenda"] and "password" not in body  # Webex makes one to its rules
    stored = peer.meetings[made.external_id]
    assert made.join_url == stored["webLink"] and made.password == stored["password"]
    assert made.host_url == f"{stored['webLink']}#hostKey=123456"
    assert made.dial_in == f"US Toll: +1-415-655-0001, access code {stored['meetingNumber']}"


def test_reschedule_reads_the_meeting_then_puts_it_back_with_the_new_times(webex, peer):
    made = webex.create(REQUEST)
    moved = replace(REQUEST, start=REQUEST.start + timedelta(days=7))
    assert webex.update(made.external_id, moved) == made  # same link and password
    (put,) = peer.calls("PUT", r"/v1/meetings/.+")
    assert put.json["password"] == made.password  # Webex requires it on PUT
    assert (put.json["start"], put.json["end"]) == ("2026-12-16T14:30:00Z", "2026-12-16T15:15:00Z")
    assert peer.meetings[made.external_id]["start"] == "2026-12-16T14:30:00Z"


def test_reschedule_returns_details_webex_changed_meanwhile(webex, peer):
    made = webex.create(REQUEST)
    peer.meetings[made.external_id]["password"] = "Rotated1"  # the host changed it in Webex
    details = webex.update(made.external_id, REQUEST)
    assert details == replace(made, password="Rotated1")
    assert peer.calls("PUT", r"/v1/meetings/.+")[0].json["password"] == "Rotated1"


def test_find_recovers_a_meeting_whose_creation_was_not_recorded(webex, peer):
    webex.create(replace(REQUEST, session_id="ss_other", topic="Someone else"))
    made = webex.create(REQUEST)
    assert webex.find(REQUEST) == made
    (listing,) = peer.calls("GET", "/v1/meetings")
    assert (listing.query["from"], listing.query["to"]) == ("2026-12-09T14:30:00Z", "2026-12-09T15:15:00Z")
    assert webex.find(replace(REQUEST, session_id="ss_nobody")) is None


def test_check_asks_whose_token_it_is(webex, peer):
    webex.check()
    assert peer.calls("GET", "/v1/people/me")


def test_a_refused_token_is_tried_once_more_then_fails(peer):
    webex = WebexProvider(peer.settings(webex_token="expired"), retry=FAST_RETRY)
    with pytest.raises(PermanentError):
        webex.check()
    assert len(peer.calls("GET", "/v1/people/me")) == 2
