"""Webex: the Meetings REST API v1 with a bearer token (a bot or integration token)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Sequence

import requests

from .base import MeetingDetails, MeetingRequest
from .http import ApiClient, RestMeetingsProvider, RetryPolicy, StaticToken, tagged_agenda, tagged_sessions, utc_iso

_CREDENTIALS = "WEBEX_TOKEN and WEBEX_API_BASE"


def dial_in_text(meeting: dict) -> str | None:
    """`US Toll: +1-415-655-0001, access code 2551 234 567` from `telephony`, else the SIP address."""
    telephony = meeting.get("telephony") or {}
    numbers = [n for n in telephony.get("callInNumbers") or [] if isinstance(n, dict) and n.get("callInNumber")]
    if numbers:
        text = "; ".join(f"{n['label']}: {n['callInNumber']}" if n.get("label") else n["callInNumber"]
                         for n in numbers[:3])
        code = telephony.get("accessCode") or meeting.get("meetingNumber")
        return text + (f", access code {code}" if code else "")
    return f"SIP {meeting['sipAddress']}" if meeting.get("sipAddress") else None


def host_link(meeting: dict) -> str:
    """Webex has no separate start link: the host signs in at `webLink`. The host key (to claim
    the host role from a phone or a room device) rides in the fragment, which browsers never
    send, so the link still opens as is and only the owner, who alone sees it, can read the key."""
    link = meeting["webLink"]
    return f"{link}#hostKey={meeting['hostKey']}" if meeting.get("hostKey") else link


class WebexProvider(RestMeetingsProvider):
    """Webex meetings over the REST API, one per session."""

    name = "webex"

    def __init__(self, settings, *, retry: RetryPolicy | None = None, session: requests.Session | None = None):
        self._api = ApiClient(
            code=self.name, label="Webex", base_url=settings.webex_api_base, timeout=settings.http_timeout_seconds,
            retry=retry or RetryPolicy.from_settings(settings), token=StaticToken(settings.webex_token),
            session=session, credentials_hint=_CREDENTIALS,
        )

    @staticmethod
    def _schedule(request: MeetingRequest) -> dict[str, Any]:
        end = request.start + timedelta(minutes=request.duration_minutes)
        return {
            "title": request.topic[:128],
            "agenda": tagged_agenda(request.topic, request.session_id)[:1300],
            "start": utc_iso(request.start),
            "end": utc_iso(end),
            "timezone": request.timezone,
        }

    def _details(self, payload: Any, method: str, path: str) -> MeetingDetails:
        meeting = self._api.require(payload, ("id", "webLink"), method, path)
        return MeetingDetails(
            provider=self.name,
            external_id=str(meeting["id"]),
            join_url=meeting["webLink"],
            password=meeting.get("password") or None,
            dial_in=dial_in_text(meeting),
            host_url=host_link(meeting),
        )

    def create(self, request: MeetingRequest) -> MeetingDetails:
        # No password in the body: Webex then makes one that meets the site's password rules.
        body = self._schedule(request) | {"enabledAutoRecordMeeting": False, "allowAnyUserToBeCoHost": False}
        return self._details(self._api.call("POST", "/meetings", json=body), "POST", "/meetings")

    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        """PUT replaces the meeting and requires its password, so read the meeting first and send
        it back with the new times. Webex answers with the whole meeting, so its current details
        are returned for the caller to store (they may have changed on Webex's side meanwhile)."""
        path = self.meeting_path(external_id)
        current = self._api.require(self._api.call("GET", path), ("id",), "GET", path)
        body = {k: current[k] for k in ("password", "enabledAutoRecordMeeting", "allowAnyUserToBeCoHost") if k in current}
        body |= self._schedule(request)
        return self._details(self._api.call("PUT", path, json=body), "PUT", path)

    def _tagged_items(self, request: MeetingRequest) -> list[dict]:
        """The meeting series starting in this session's slot whose agenda carries its tag. Webex
        filters the list by start time, and one slot holds few meetings: a page of 100 is plenty."""
        window = {
            "from": utc_iso(request.start),
            "to": utc_iso(request.start + timedelta(minutes=max(1, request.duration_minutes))),
            "max": 100,
        }
        page = self._api.require(self._api.call("GET", "/meetings", params=window), ("items",), "GET", "/meetings")
        return [item for item in page["items"]
                if isinstance(item, dict) and request.session_id in tagged_sessions(item.get("agenda"))]

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        """The meeting series starting at this session's time whose agenda carries its tag."""
        items = self._tagged_items(request)
        return self._details(items[0], "GET", "/meetings") if items else None

    def tagged_meetings(self, requests: Sequence[MeetingRequest]) -> dict[str, list[str]]:
        """One listing per session, of its slot (see `_tagged_items`)."""
        found = {request.session_id: [str(item["id"]) for item in self._tagged_items(request) if item.get("id")]
                 for request in requests}
        return {session_id: ids for session_id, ids in found.items() if ids}

    def check(self) -> None:
        """The token works when Webex tells us whose it is."""
        self._api.call("GET", "/people/me")
