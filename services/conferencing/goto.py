"""GoToMeeting: the G2M REST API with a bearer (OAuth access) token.

Its quirks: creating a meeting answers with a JSON array holding one object; meeting fields are
lower-case in requests (`starttime`) and camel-case in listings (`startTime`, in a
`2026-12-07T14:00:00.+0000` form); meetings carry no agenda, so `find()` matches a session by its
subject and start time, which is unique because an owner never has two sessions at once.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import requests

from .base import MeetingDetails, MeetingRequest
from .http import ApiClient, RestMeetingsProvider, RetryPolicy, StaticToken, utc_iso

_CREDENTIALS = "GOTO_TOKEN and GOTO_API_BASE"
# The listings carry no join link; GoTo's join links all have this form.
JOIN_URL = "https://global.gotomeeting.com/join/{meeting_id}"

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d*)?(Z|[+-]\d\d:?\d\d)?$")


def parse_goto_time(value: Any) -> datetime | None:
    """A GoTo timestamp (`...T14:00:00Z`, `...T14:00:00.+0000`, `...T14:00:00+00:00`) as aware
    UTC, or None when it is not one. A timestamp without an offset is UTC, as GoTo means it."""
    match = _TIME.match(str(value or "").strip())
    if not match:
        return None
    stamp, offset = match.groups()
    offset = "+00:00" if offset in (None, "Z") else offset
    if ":" not in offset:
        offset = f"{offset[:3]}:{offset[3:]}"
    return datetime.fromisoformat(stamp + offset).astimezone(timezone.utc)


def dial_in_text(call_info: Any) -> str | None:
    """GoTo's `conferenceCallInfo` is display text across lines ("United States: +1 ...\\nAccess
    Code: ..."), or a bare mode such as "VoIP" when there is no phone line to offer."""
    text = "; ".join(line.strip() for line in str(call_info or "").splitlines() if line.strip())
    return text if any(ch.isdigit() for ch in text) else None


class GoToMeetingProvider(RestMeetingsProvider):
    """GoToMeeting meetings over the REST API, one per session."""

    name = "gotomeeting"

    def __init__(self, settings, *, retry: RetryPolicy | None = None, session: requests.Session | None = None):
        self._api = ApiClient(
            code=self.name, label="GoToMeeting", base_url=settings.goto_api_base,
            timeout=settings.http_timeout_seconds, retry=retry or RetryPolicy.from_settings(settings),
            token=StaticToken(settings.goto_token), session=session, credentials_hint=_CREDENTIALS,
        )

    @staticmethod
    def _body(request: MeetingRequest) -> dict[str, Any]:
        """Create and update take the same fields; times go in UTC, so timezonekey stays empty
        (GoTo has deprecated it)."""
        return {
            "subject": request.topic[:100],
            "starttime": utc_iso(request.start),
            "endtime": utc_iso(request.start + timedelta(minutes=request.duration_minutes)),
            "passwordrequired": False,
            "conferencecallinfo": "Hybrid",  # phone and computer audio
            "timezonekey": "",
            "meetingtype": "scheduled",
        }

    def _details(self, meeting: dict) -> MeetingDetails:
        meeting_id = str(meeting.get("meetingid") or meeting.get("meetingId"))
        return MeetingDetails(
            provider=self.name,
            external_id=meeting_id,
            join_url=meeting.get("joinURL") or JOIN_URL.format(meeting_id=meeting_id),
            dial_in=dial_in_text(meeting.get("conferenceCallInfo")),
            # GoTo's start link (GET /meetings/{id}/start) is short-lived, so none is kept: the
            # owner starts the meeting from the GoTo app, signed in, or from the join link.
            host_url=None,
        )

    def create(self, request: MeetingRequest) -> MeetingDetails:
        payload = self._api.call("POST", "/meetings", json=self._body(request))
        if not isinstance(payload, list) or len(payload) != 1:
            raise self._api.malformed("POST", "/meetings", "expected a JSON array with one meeting")
        return self._details(self._api.require(payload[0], ("meetingid", "joinURL"), "POST", "/meetings"))

    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        # GoTo answers 204 and keeps the join link.
        self._api.call("PUT", self.meeting_path(external_id), json=self._body(request))
        return None

    def _upcoming(self) -> list:
        payload = self._api.call("GET", "/upcomingMeetings")
        if not isinstance(payload, list):
            raise self._api.malformed("GET", "/upcomingMeetings", "expected a JSON array")
        return payload

    def _matching(self, items: list, request: MeetingRequest) -> list[dict]:
        """The listed meetings with this session's subject and start time: its mark at GoTo."""
        subject = self._body(request)["subject"]
        start = parse_goto_time(utc_iso(request.start))
        return [item for item in items
                if isinstance(item, dict) and item.get("meetingId") and item.get("subject") == subject
                and parse_goto_time(item.get("startTime")) == start]

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        """The upcoming meeting with this session's subject and start time."""
        matches = self._matching(self._upcoming(), request)
        return self._details(matches[0]) if matches else None

    def tagged_meetings(self, requests: Sequence[MeetingRequest]) -> dict[str, list[str]]:
        """One listing of the upcoming meetings serves every session, matched as `find()` does."""
        items = self._upcoming()
        found = {request.session_id: [str(item["meetingId"]) for item in self._matching(items, request)]
                 for request in requests}
        return {session_id: ids for session_id, ids in found.items() if ids}

    def check(self) -> None:
        """The token works when GoTo lists its upcoming meetings."""
        self._api.call("GET", "/upcomingMeetings")
