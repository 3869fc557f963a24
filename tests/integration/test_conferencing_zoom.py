"""The Zoom adapter against the loopback Zoom: OAuth, the meeting's shape, reschedule, cancel, find."""
from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.conferencing.base import MeetingRequest
from services.conferencing.zoom import ZoomProvider
from services.errors import PermanentError
from tests.peers import FAST_RETRY, adapter_fixture, peer_fixture
from tests.peers.zoom import ZoomPeer

pytestmark = pytest.mark.integration

REQUEST = MeetingRequest("ss_zoom1", "Consultation with Dana, session 1 of 10",
                         datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc), 60, "America/New_York")


peer = peer_fixture(ZoomPeer)
zoom = adapter_fixture(ZoomProvider, "zoom")


def test_create_fetches_a_token_with_the_apps_credentials(zoom, peer):
    zoom.create(REQUEST)
    (token_call,) = peer.token_requests
    assert token_call.query == {"grant_type": "account_credentials", "account_id": "acct-42"}
    assert token_call.headers["authorization"] == "Basic " + base64.b64encode(b"client-id:client-secret").decode()


def test_create_sends_a_scheduled_meeting_in_utc_with_the_owners_zone(zoom, peer):
    made = zoom.create(REQUEST)
    (call,) = peer.calls("POST", "/v2/users/me/meetings")
    assert call.bearer in peer.tokens
    body = call.json
    assert body["type"] == 2 and body["topic"] == REQUEST.topic
    assert body["start_time"] == "2026-12-07T14:00:00Z" and body["duration"] == 60
    assert body["timezone"] == "America/New_York"
    assert "ss_zoom1" in body["agenda"] and body["password"] == made.password
    stored = peer.meetings[made.external_id]
    assert made.join_url == stored["join_url"] and made.host_url == stored["start_url"]
    assert made.host_url != made.join_url
    assert "+1 646 558 8656" in made.dial_in and stored["pstn_password"] in made.dial_in


def test_meetings_belong_to_zoom_user(peer):
    zoom = ZoomProvider(peer.settings(zoom_user="dana@example.com"), retry=FAST_RETRY)
    zoom.create(REQUEST)
    assert peer.calls("POST", "/v2/users/dana@example.com/meetings")


def test_the_token_is_cached_across_calls(zoom, peer):
    made = zoom.create(REQUEST)
    zoom.update(made.external_id, REQUEST)
    zoom.delete(made.external_id)
    assert len(peer.token_requests) == 1


def test_a_token_near_its_expiry_is_replaced_before_zoom_refuses_it(peer):
    now = [1000.0]
    zoom = ZoomProvider(peer.settings(), retry=FAST_RETRY, clock=lambda: now[0])
    zoom.create(REQUEST)
    now[0] += peer.token_ttl - 30  # inside the safety margin
    zoom.create(replace(REQUEST, session_id="ss_zoom2"))
    assert len(peer.token_requests) == 2
    assert not [r for r in peer.requests if r.path.startswith("/v2") and r.bearer not in peer.tokens]


def test_a_token_zoom_revoked_is_fetched_again_on_401(zoom, peer):
    zoom.create(REQUEST)
    peer.revoke_tokens()
    zoom.create(replace(REQUEST, session_id="ss_zoom2"))
    assert len(peer.token_requests) == 2 and len(peer.meetings) == 2


def test_reschedule_sends_one_patch_with_the_new_time(zoom, peer):
    made = zoom.create(REQUEST)
    moved = replace(REQUEST, start=REQUEST.start + timedelta(days=2, hours=1))
    assert zoom.update(made.external_id, moved) is None  # the join link stays
    (patch,) = peer.calls("PATCH", r"/v2/meetings/\d+")
    assert patch.path == f"/v2/meetings/{made.external_id}"
    assert patch.json["start_time"] == "2026-12-09T15:00:00Z" and patch.json["timezone"] == "America/New_York"
    assert peer.meetings[made.external_id]["start_time"] == "2026-12-09T15:00:00Z"


def test_rescheduling_a_deleted_meeting_is_permanent(zoom, peer):
    made = zoom.create(REQUEST)
    zoom.delete(made.external_id)
    with pytest.raises(PermanentError) as caught:
        zoom.update(made.external_id, REQUEST)
    assert caught.value.code == "zoom_not_found" and "Meeting does not exist" in caught.value.message


def test_find_recovers_a_meeting_whose_creation_was_not_recorded(zoom, peer):
    made = zoom.create(REQUEST)  # ...and the worker died before saving `made`
    found = zoom.find(REQUEST)
    assert found == made  # full details, start link and passcode included
    assert len(peer.calls("POST", r".*/meetings")) == 1


def test_find_pages_through_the_upcoming_meetings(zoom, peer):
    peer.max_page_size = 2
    for number in range(1, 6):
        zoom.create(replace(REQUEST, session_id=f"ss_{number}", start=REQUEST.start + timedelta(days=number)))
    assert zoom.find(replace(REQUEST, session_id="ss_5")).external_id == "85746065005"
    pages = peer.calls("GET", "/v2/users/me/meetings")
    assert [p.query.get("next_page_token") for p in pages] == [None, "2", "4"]
    assert all(p.query["type"] == "upcoming" for p in pages)
    assert zoom.find(replace(REQUEST, session_id="ss_nobody")) is None


def test_check_passes_with_working_credentials(zoom, peer):
    zoom.check()
    assert len(peer.token_requests) == 1 and peer.calls("GET", "/v2/users/me")


def test_check_reports_an_unknown_zoom_user(peer):
    zoom = ZoomProvider(peer.settings(zoom_user="nobody@example.com"), retry=FAST_RETRY)
    with pytest.raises(PermanentError) as caught:
        zoom.check()
    assert caught.value.code == "zoom_not_found" and "User does not exist" in caught.value.message
