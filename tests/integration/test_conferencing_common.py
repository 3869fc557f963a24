"""What every adapter does the same way, each against its loopback peer: cancel, refused
credentials, and the shared error policy (token refresh, 429 with and without Retry-After, 5xx,
timeouts, malformed answers, 404 on delete, 4xx refusals)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable

import pytest

from services.conferencing.base import ConferencingProvider, MeetingRequest
from services.conferencing.goto import GoToMeetingProvider
from services.conferencing.webex import WebexProvider
from services.conferencing.zoom import ZoomProvider
from services.errors import PermanentError, TransientError
from tests.peers import FAST_RETRY
from tests.peers.goto import GoToPeer
from tests.peers.http_peer import HttpPeer
from tests.peers.webex import WebexPeer
from tests.peers.zoom import ZoomPeer

pytestmark = pytest.mark.integration

REQUEST = MeetingRequest("ss_common", "Consultation, session 1 of 3",
                         datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc), 60, "America/New_York")


@dataclass(frozen=True)
class Case:
    peer: type[HttpPeer]
    adapter: type[ConferencingProvider]
    refusal: str  # what the peer says about a meeting with no duration
    bad_credentials: dict  # settings the peer refuses with 401
    says_on_401: str
    hint: str  # the variable a refused-credentials message names


CASES = {
    "zoom": Case(ZoomPeer, ZoomProvider, "Invalid field: duration.", {"zoom_client_secret": "wrong"},
                 "Invalid client_id or client_secret", "ZOOM_CLIENT_SECRET"),
    "webex": Case(WebexPeer, WebexProvider, "end must be after start.", {"webex_token": "expired"},
                  "requires a valid access token", "WEBEX_TOKEN"),
    "gotomeeting": Case(GoToPeer, GoToMeetingProvider, "endtime after starttime", {"goto_token": "stale"},
                        "The token is invalid or expired.", "GOTO_TOKEN"),
}


def on_meetings(request) -> bool:
    """Aims a fault at the meetings API, not at Zoom's token endpoint."""
    return "/meetings" in request.path


@dataclass
class Rig:
    name: str
    case: Case
    peer: HttpPeer
    provider: ConferencingProvider
    build: Callable[..., ConferencingProvider]  # another adapter on this peer, settings overridden
    sleeps: list[float] = field(default_factory=list)

    def creates(self):
        return self.peer.calls("POST", r".*/meetings")


@pytest.fixture(params=sorted(CASES))
def rig(request):
    case = CASES[request.param]
    sleeps: list[float] = []
    policy = replace(FAST_RETRY, sleep=sleeps.append)  # record the waits instead of waiting
    with case.peer() as peer:
        def build(**overrides):
            return case.adapter(peer.settings(**overrides), retry=policy)
        yield Rig(request.param, case, peer, build(), build, sleeps)


def test_cancel_sends_one_delete(rig):
    made = rig.provider.create(REQUEST)
    rig.provider.delete(made.external_id)
    (deleted,) = rig.peer.calls("DELETE")
    assert deleted.path.endswith(f"/meetings/{made.external_id}") and rig.peer.meetings == {}


def test_refused_credentials_fail_for_good_naming_what_to_fix(rig):
    with pytest.raises(PermanentError) as caught:
        rig.build(**rig.case.bad_credentials).check()
    assert caught.value.code == f"{rig.name}_unauthorized"
    assert rig.case.says_on_401 in caught.value.message and rig.case.hint in caught.value.message


def test_401_refreshes_the_token_once_and_sends_again(rig):
    rig.peer.fail_next(401, match=on_meetings)
    details = rig.provider.create(REQUEST)
    assert details.external_id and len(rig.creates()) == 2 and rig.sleeps == []
    if rig.name == "zoom":  # a real refresh: the OAuth endpoint is asked again, for a new token
        assert len(rig.peer.token_requests) == 2
        assert rig.creates()[0].bearer != rig.creates()[1].bearer


def test_429_waits_as_long_as_retry_after_says(rig):
    rig.peer.fail_next(429, headers={"Retry-After": "2"}, match=on_meetings)
    rig.provider.create(REQUEST)
    assert rig.sleeps == [2.0] and len(rig.creates()) == 2


def test_429_without_retry_after_backs_off(rig):
    rig.peer.fail_next(429, match=on_meetings)
    rig.provider.create(REQUEST)
    assert len(rig.sleeps) == 1 and FAST_RETRY.base_delay / 2 <= rig.sleeps[0] <= FAST_RETRY.base_delay


def test_429_that_persists_is_transient_after_the_attempts(rig):
    rig.peer.fail_next(429, times=10, headers={"Retry-After": "1"}, match=on_meetings)
    with pytest.raises(TransientError) as caught:
        rig.provider.create(REQUEST)
    assert caught.value.code == f"{rig.name}_rate_limited" and caught.value.retry_after == 1.0
    assert len(rig.creates()) == FAST_RETRY.attempts


def test_429_asking_for_a_long_wait_is_handed_to_the_task_at_once(rig):
    rig.peer.fail_next(429, headers={"Retry-After": "120"}, match=on_meetings)
    with pytest.raises(TransientError) as caught:
        rig.provider.create(REQUEST)
    assert caught.value.retry_after == 120.0 and rig.sleeps == [] and len(rig.creates()) == 1


def test_500_then_ok(rig):
    rig.peer.fail_next(500, match=on_meetings)
    assert rig.provider.create(REQUEST).join_url.startswith("https://")
    assert len(rig.creates()) == 2 and len(rig.sleeps) == 1


def test_5xx_that_persists_is_transient_with_the_providers_words(rig):
    rig.peer.fail_next(503, times=10, body=rig.peer.error_body(503, "Service is down for maintenance."), match=on_meetings)
    with pytest.raises(TransientError) as caught:
        rig.provider.create(REQUEST)
    assert caught.value.code == f"{rig.name}_unavailable"
    assert "Service is down for maintenance." in caught.value.message
    assert len(rig.creates()) == FAST_RETRY.attempts


def test_a_slow_create_times_out_as_transient_and_is_not_sent_twice(rig):
    provider = rig.build(http_timeout_seconds=0.2)
    provider.check()  # Zoom: fetch the token first, so the timeout hits the create itself
    rig.peer.slow_next(1.0, match=on_meetings)
    began = time.monotonic()
    with pytest.raises(TransientError) as caught:
        provider.create(REQUEST)
    assert caught.value.code == f"{rig.name}_timeout" and "0.2s" in caught.value.message
    assert time.monotonic() - began < 0.9 and len(rig.creates()) == 1


def test_a_slow_delete_times_out_and_is_sent_again(rig):
    provider = rig.build(http_timeout_seconds=0.2)
    made = provider.create(REQUEST)
    rig.peer.slow_next(1.0, match=lambda r: r.method == "DELETE")
    provider.delete(made.external_id)
    assert len(rig.peer.calls("DELETE")) == 2 and rig.peer.meetings == {}


def test_a_malformed_answer_is_a_clear_error_and_find_recovers_the_meeting(rig):
    rig.peer.malformed_next(match=lambda r: r.method == "POST" and on_meetings(r))
    with pytest.raises(TransientError) as caught:
        rig.provider.create(REQUEST)
    assert caught.value.code == f"{rig.name}_malformed_response"
    assert "body we cannot use" in caught.value.message and "not JSON" in caught.value.message
    recovered = rig.provider.find(REQUEST)  # what a retried task does before creating again
    assert recovered is not None and list(rig.peer.meetings) == [recovered.external_id]


def test_deleting_a_meeting_that_is_gone_is_done(rig):
    made = rig.provider.create(REQUEST)
    rig.provider.delete(made.external_id)
    rig.provider.delete(made.external_id)
    rig.provider.delete("987654321")
    assert rig.peer.meetings == {} and len(rig.peer.calls("DELETE")) == 3


def test_a_refused_request_is_permanent_with_the_providers_message(rig):
    with pytest.raises(PermanentError) as caught:
        rig.provider.create(replace(REQUEST, duration_minutes=0))
    assert caught.value.code == f"{rig.name}_rejected" and caught.value.details["status"] == 400
    assert rig.case.refusal in caught.value.message
    assert len(rig.creates()) == 1 and rig.sleeps == []


def test_a_peer_that_is_down_is_transient_after_the_attempts(rig):
    rig.peer.stop()
    with pytest.raises(TransientError) as caught:
        rig.provider.create(REQUEST)
    assert caught.value.code == f"{rig.name}_unreachable"
    assert len(rig.sleeps) == FAST_RETRY.attempts - 1  # nothing arrived, so even a POST is resent
