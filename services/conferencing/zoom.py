"""Zoom: Server-to-Server OAuth and the Meetings API v2.

A token comes from `POST {ZOOM_OAUTH_URL}?grant_type=account_credentials&account_id=...` with the
app's client id and secret as Basic auth; it is cached until shortly before `expires_in` and
fetched again when the API answers 401. Meetings are scheduled meetings (type 2) of ZOOM_USER.
"""
from __future__ import annotations

import secrets
import string
import time
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote

import requests

from .base import MeetingDetails, MeetingRequest
from .http import (
    ApiClient, ExpiringToken, RestMeetingsProvider, RetryPolicy, new_session, tagged_agenda, tagged_sessions, utc_iso,
)

SCHEDULED_MEETING = 2
_CREDENTIALS = "ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET and ZOOM_OAUTH_URL"
_LIST_PAGE_SIZE = 300  # Zoom's maximum, so find() usually needs one page
_DIAL_IN_NUMBERS_KEPT = 3  # enough for an email; the column holds 500 characters


def new_passcode(length: int = 8) -> str:
    """A passcode Zoom accepts (at most 10 of [A-Za-z0-9]) with a letter and a digit, since
    accounts may require both."""
    alphabet = string.ascii_letters + string.digits
    while True:
        code = "".join(secrets.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
            return code


def dial_in_text(meeting: dict) -> str | None:
    """`+1 646 558 8656 (US, New York); ... — meeting ID 857 4606 5432, passcode 123456`, from the
    meeting's `settings.global_dial_in_numbers`, or None when the account has no phone numbers."""
    numbers = (meeting.get("settings") or {}).get("global_dial_in_numbers") or []
    parts = []
    for entry in numbers[:_DIAL_IN_NUMBERS_KEPT]:
        if not isinstance(entry, dict) or not entry.get("number"):
            continue
        where = ", ".join(str(entry[k]) for k in ("country_name", "city") if entry.get(k))
        parts.append(f"{entry['number']} ({where})" if where else str(entry["number"]))
    if not parts:
        return None
    text = "; ".join(parts) + f" — meeting ID {meeting['id']}"
    passcode = meeting.get("pstn_password") or meeting.get("password")
    return text + (f", passcode {passcode}" if passcode else "")


class ZoomProvider(RestMeetingsProvider):
    """Zoom meetings over the REST API, one per session."""

    name = "zoom"

    def __init__(self, settings, *, retry: RetryPolicy | None = None, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic):
        session = session or new_session()
        retry = retry or RetryPolicy.from_settings(settings)
        common = dict(code=self.name, label="Zoom", timeout=settings.http_timeout_seconds, retry=retry,
                      session=session, credentials_hint=_CREDENTIALS)
        self._account_id = settings.zoom_account_id
        self._client = (settings.zoom_client_id, settings.zoom_client_secret)
        self._oauth = ApiClient(base_url=settings.zoom_oauth_url, **common)
        self.tokens = ExpiringToken(self._fetch_token, clock=clock)
        self._api = ApiClient(base_url=settings.zoom_api_base, token=self.tokens, **common)
        self._user_path = f"/users/{quote(settings.zoom_user, safe='@')}"

    def _fetch_token(self) -> tuple[str, float]:
        # Fetching a token twice is harmless, so even this POST may be resent after a timeout.
        payload = self._oauth.call(
            "POST", params={"grant_type": "account_credentials", "account_id": self._account_id},
            auth=self._client, idempotent=True,
        )
        token = self._oauth.require(payload, ("access_token",), "POST", "/oauth/token")
        try:
            lifetime = float(token.get("expires_in") or 3600)
        except (TypeError, ValueError):
            raise self._oauth.malformed("POST", "/oauth/token", "expires_in is not a number") from None
        return str(token["access_token"]), lifetime

    @staticmethod
    def _schedule(request: MeetingRequest) -> dict[str, Any]:
        """The fields a create and a reschedule both send. start_time in UTC ('Z') is what Zoom
        stores; timezone is the zone Zoom shows the meeting in."""
        return {
            "topic": request.topic[:200],
            "start_time": utc_iso(request.start),
            "duration": request.duration_minutes,
            "timezone": request.timezone,
            "agenda": tagged_agenda(request.topic, request.session_id)[:2000],
        }

    def _details(self, payload: Any, method: str, path: str) -> MeetingDetails:
        meeting = self._api.require(payload, ("id", "join_url"), method, path)
        return MeetingDetails(
            provider=self.name,
            external_id=str(meeting["id"]),
            join_url=meeting["join_url"],
            password=meeting.get("password") or None,
            dial_in=dial_in_text(meeting),
            host_url=meeting.get("start_url") or None,
        )

    def create(self, request: MeetingRequest) -> MeetingDetails:
        path = f"{self._user_path}/meetings"
        body = self._schedule(request) | {
            "type": SCHEDULED_MEETING,
            "password": new_passcode(),
            "settings": {"join_before_host": False, "audio": "both"},
        }
        return self._details(self._api.call("POST", path, json=body), "POST", path)

    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        # Zoom answers 204 and keeps the join link and passcode, so there is nothing new to return.
        self._api.call("PATCH", self.meeting_path(external_id), json=self._schedule(request))
        return None

    def _listed(self, kind: str) -> Iterator[dict]:
        """The user's meetings of one list `type`, page by page. The list omits start links and
        passcodes."""
        path = f"{self._user_path}/meetings"
        params: dict[str, Any] = {"type": kind, "page_size": _LIST_PAGE_SIZE}
        while True:
            page = self._api.require(self._api.call("GET", path, params=params), ("meetings",), "GET", path)
            yield from (item for item in page["meetings"] if isinstance(item, dict) and item.get("id") is not None)
            if not page.get("next_page_token"):
                return
            params["next_page_token"] = page["next_page_token"]

    @staticmethod
    def _tags(item: dict) -> set[str]:
        return tagged_sessions(item.get("agenda"), item.get("topic"))

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        """Page through the user's upcoming meetings for one whose agenda (or topic) carries this
        session's tag, then read it in full."""
        for item in self._listed("upcoming"):
            if request.session_id in self._tags(item):
                detail_path = self.meeting_path(str(item["id"]))
                return self._details(self._api.call("GET", detail_path), "GET", detail_path)
        return None

    def tagged_meetings(self, requests: Sequence[MeetingRequest]) -> dict[str, list[str]]:
        """One walk through the user's meetings serves every session. It lists `scheduled`
        meetings (every unexpired one), not `upcoming`, so an orphan whose session has already
        begun is found too."""
        wanted = {request.session_id for request in requests}
        found: dict[str, list[str]] = {}
        for item in self._listed("scheduled"):
            for session_id in self._tags(item) & wanted:
                found.setdefault(session_id, []).append(str(item["id"]))
        return found

    def check(self) -> None:
        """Fetch a fresh token (the credentials) and read ZOOM_USER (the user meetings belong to)."""
        self.tokens.renew()
        self._api.call("GET", self._user_path)
