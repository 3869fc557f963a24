"""The shared HTTP layer's policy, driven through a scripted session: no sockets."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from services.conferencing.http import (
    ApiClient, ExpiringToken, RetryPolicy, StaticToken, parse_retry_after, provider_message, utc_iso,
)
from services.errors import PermanentError, TransientError


def response(status: int, body: bytes = b"", headers: dict | None = None) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = body
    made.headers.update(headers or {})
    return made


class ScriptedSession:
    """Answers each request with the next outcome: a Response, or an exception to raise."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.sent: list[tuple[str, str, dict]] = []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class CountingToken(StaticToken):
    def __init__(self):
        super().__init__("t-1")
        self.refreshed: list[str] = []

    def refresh(self, stale: str) -> str:
        self.refreshed.append(stale)
        return super().refresh(stale)


def refused_connection() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/", reason=NewConnectionError(None, "refused")))


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(session: ScriptedSession, sleeps: list[float], **kwargs) -> ApiClient:
    policy = RetryPolicy(attempts=3, base_delay=0.1, max_delay=0.4, max_retry_after=10, sleep=sleeps.append)
    return ApiClient(code="demo", label="Demo", base_url="https://api.example/v1/", timeout=1.5,
                     retry=policy, session=session, credentials_hint="DEMO_TOKEN", **kwargs)


def test_a_success_returns_the_json_body_and_sends_the_bearer_token_and_timeout(sleeps):
    session = ScriptedSession(response(201, b'{"id": 7}'))
    assert client(session, sleeps, token=StaticToken("abc")).call("POST", "/things", json={"a": 1}) == {"id": 7}
    method, url, kwargs = session.sent[0]
    assert (method, url) == ("POST", "https://api.example/v1/things")
    assert kwargs["headers"]["Authorization"] == "Bearer abc"
    assert kwargs["timeout"] == 1.5 and kwargs["json"] == {"a": 1}


def test_a_post_that_may_have_arrived_is_not_sent_again(sleeps):
    session = ScriptedSession(requests.ReadTimeout("slow"), response(201, b"{}"))
    with pytest.raises(TransientError) as caught:
        client(session, sleeps).call("POST", "/things")
    assert caught.value.code == "demo_timeout" and "1.5s" in caught.value.message
    assert len(session.sent) == 1


@pytest.mark.parametrize("never_arrived", [requests.ConnectTimeout("no route"), refused_connection()])
def test_a_post_that_never_arrived_is_sent_again(sleeps, never_arrived):
    session = ScriptedSession(never_arrived, response(201, b'{"ok": true}'))
    assert client(session, sleeps).call("POST", "/things") == {"ok": True}
    assert len(session.sent) == 2 and len(sleeps) == 1


def test_a_post_whose_connection_dropped_midway_is_not_sent_again(sleeps):
    session = ScriptedSession(requests.ConnectionError("Connection reset by peer"))
    with pytest.raises(TransientError) as caught:
        client(session, sleeps).call("POST", "/things")
    assert caught.value.code == "demo_unreachable"


def test_an_idempotent_call_retries_timeouts_until_the_attempts_run_out(sleeps):
    session = ScriptedSession(*[requests.ReadTimeout("slow")] * 3)
    with pytest.raises(TransientError):
        client(session, sleeps).call("PUT", "/things/1")
    assert len(session.sent) == 3 and len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2  # doubling, with jitter


def test_a_second_401_after_one_refresh_is_permanent_and_names_what_to_fix(sleeps):
    token = CountingToken()
    session = ScriptedSession(response(401, b'{"message": "bad token"}'), response(401, b'{"message": "bad token"}'))
    with pytest.raises(PermanentError) as caught:
        client(session, sleeps, token=token).call("GET", "/me")
    assert caught.value.code == "demo_unauthorized"
    assert "bad token" in caught.value.message and "DEMO_TOKEN" in caught.value.message
    assert token.refreshed == ["t-1"] and sleeps == []


def test_retry_after_as_an_http_date_is_honoured(sleeps):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=4), usegmt=True)
    session = ScriptedSession(response(429, headers={"Retry-After": later}), response(204))
    assert client(session, sleeps).call("DELETE", "/things/1") is None
    assert 2.0 <= sleeps[0] <= 4.0


def test_a_retry_after_beyond_the_cap_is_handed_to_the_caller_instead_of_slept(sleeps):
    session = ScriptedSession(response(429, b'{"message": "daily limit"}', {"Retry-After": "3600"}))
    with pytest.raises(TransientError) as caught:
        client(session, sleeps).call("GET", "/things")
    assert caught.value.code == "demo_rate_limited" and caught.value.retry_after == 3600
    assert "daily limit" in caught.value.message and sleeps == []


def test_a_url_without_a_scheme_is_a_configuration_error(sleeps):
    session = ScriptedSession(requests.exceptions.MissingSchema("no scheme"))
    with pytest.raises(PermanentError) as caught:
        client(session, sleeps).call("GET", "/things")
    assert caught.value.code == "demo_bad_config" and "DEMO_TOKEN" in caught.value.message


@pytest.mark.parametrize("status, kind", [(403, "forbidden"), (404, "not_found"), (409, "rejected")])
def test_other_4xx_fail_at_once_with_a_stable_code(sleeps, status, kind):
    session = ScriptedSession(response(status, b'{"message": "nope"}'))
    with pytest.raises(PermanentError) as caught:
        client(session, sleeps).call("PATCH", "/things/1")
    assert caught.value.code == f"demo_{kind}" and caught.value.details["status"] == status
    assert len(session.sent) == 1


@pytest.mark.parametrize("body, expected", [
    (b'{"code": 300, "message": "Invalid field."}', "Invalid field."),  # Zoom
    (b'{"message": "Bad", "errors": [{"description": "end before start"}], "trackingId": "x"}', "Bad; end before start"),
    (b'{"int_err_code": "InvalidRequest", "msg": "subject is required"}', "subject is required"),  # GoTo
    (b'{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}',
     "Invalid client_id or client_secret; invalid_client"),  # Zoom OAuth
    (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    (b"", "HTTP 502 with an empty body"),
])
def test_provider_message_reads_each_providers_error_shape(body, expected):
    assert provider_message(response(502, body)) == expected


def test_parse_retry_after():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Tue, 01 Dec 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("Tue, 01 Dec 2026 11:00:00 GMT", now=lambda: now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = {policy.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 1


def test_retry_policy_from_settings_reads_extra():
    class Plain:
        extra = {"http_retry": {"attempts": 2, "base_delay": 0.05, "unknown": 1}}

    assert RetryPolicy.from_settings(Plain()) == replace(RetryPolicy(), attempts=2, base_delay=0.05)


def test_expiring_token_is_cached_until_just_before_expiry_and_refreshed_once_per_stale_token():
    now = [0.0]
    fetched: list[str] = []

    def fetch():
        fetched.append(f"tok-{len(fetched) + 1}")
        return fetched[-1], 3600

    tokens = ExpiringToken(fetch, margin=60, clock=lambda: now[0])
    assert tokens.token() == tokens.token() == "tok-1"
    now[0] = 3539.0
    assert tokens.token() == "tok-1"
    now[0] = 3540.0
    assert tokens.token() == "tok-2"
    assert tokens.refresh("tok-2") == "tok-3"
    assert tokens.refresh("tok-2") == "tok-3"  # another thread refreshed it already
    assert fetched == ["tok-1", "tok-2", "tok-3"]


def test_utc_iso_writes_utc_with_z():
    berlin = timezone(timedelta(hours=1))
    assert utc_iso(datetime(2026, 12, 7, 15, 0, tzinfo=berlin)) == "2026-12-07T14:00:00Z"
    assert utc_iso(datetime(2026, 12, 7, 14, 0)) == "2026-12-07T14:00:00Z"  # naive is UTC, as stored
