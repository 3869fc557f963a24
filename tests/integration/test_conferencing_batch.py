"""A 10-session Zoom package: ten distinct meetings in parallel, or none at all."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.conferencing.base import MeetingRequest
from services.conferencing.batch import create_meetings, delete_meetings
from services.conferencing.zoom import ZoomProvider
from services.errors import PermanentError, TransientError
from tests.peers import adapter_fixture, peer_fixture
from tests.peers.zoom import ZoomPeer

pytestmark = pytest.mark.integration

FIRST = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)
PACKAGE = [MeetingRequest(f"ss_{n:02d}", f"Consultation with Dana, session {n} of 10", FIRST + timedelta(days=2 * n),
                          60, "America/New_York") for n in range(1, 11)]


def session(number: int):
    """Aims a peer fault at the create of one session of the package."""
    return lambda r: r.method == "POST" and f"session {number} of" in ((r.json or {}).get("topic") or "")


peer = peer_fixture(ZoomPeer)
zoom = adapter_fixture(ZoomProvider, "zoom")


def test_ten_sessions_get_ten_distinct_meetings_in_order(zoom, peer):
    made = create_meetings(zoom, PACKAGE, max_parallel=4)
    assert len({m.external_id for m in made}) == len({m.join_url for m in made}) == 10
    assert len({m.password for m in made}) == 10
    assert [peer.meetings[m.external_id]["agenda"].split("sessionpack:")[1][:5] for m in made] == [
        r.session_id for r in PACKAGE]
    assert len(peer.token_requests) == 1  # the parallel creates shared one token


def test_a_refusal_on_meeting_7_deletes_the_meetings_already_made(zoom, peer):
    peer.fail_next(400, body={"code": 300, "message": "Invalid field: topic."}, match=session(7))
    with pytest.raises(PermanentError) as caught:
        create_meetings(zoom, PACKAGE, max_parallel=4)
    assert "Invalid field: topic." in caught.value.message
    assert sorted(f"/v2/meetings/{i}" for i in peer.created) == sorted(r.path for r in peer.calls("DELETE"))
    assert 6 <= len(peer.created) <= 9 and peer.meetings == {}


def test_a_lost_answer_on_meeting_7_is_found_and_deleted_too(zoom, peer):
    peer.malformed_next(match=session(7))  # Zoom made the meeting; its answer did not arrive whole
    with pytest.raises(TransientError):
        create_meetings(zoom, PACKAGE, max_parallel=4)
    assert peer.meetings == {}


def test_a_redelivered_create_finds_the_first_meeting_instead_of_making_another(zoom, peer):
    first = create_meetings(zoom, PACKAGE[:3])
    again = [zoom.find(r) or zoom.create(r) for r in PACKAGE[:3]]  # what the retried task does
    assert again == first and len(peer.meetings) == 3


def test_delete_meetings_cancels_several_and_may_run_again(zoom, peer):
    made = create_meetings(zoom, PACKAGE[:4])
    delete_meetings(zoom, [m.external_id for m in made])
    delete_meetings(zoom, [m.external_id for m in made])
    assert peer.meetings == {} and len(peer.calls("DELETE")) == 8

