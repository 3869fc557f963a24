"""A loopback Webex: the Meetings and People APIs under /v1, with one bearer token."""
from __future__ import annotations

import itertools
import secrets
from zoneinfo import available_timezones

from . import base_settings
from .http_peer import HttpPeer, Recorded, Reply, parse_iso

_ZONES = available_timezones()


class WebexPeer(HttpPeer):
    """Accepts one token and keeps its user's meeting series in memory."""

    routes = [
        ("GET", r"/v1/people/me", "get_me"),
        ("POST", r"/v1/meetings", "create_meeting"),
        ("GET", r"/v1/meetings", "list_meetings"),
        ("GET", r"/v1/meetings/(?P<id>[^/]+)", "get_meeting"),
        ("PUT", r"/v1/meetings/(?P<id>[^/]+)", "replace_meeting"),
        ("DELETE", r"/v1/meetings/(?P<id>[^/]+)", "delete_meeting"),
    ]

    def __init__(self, *, token: str = "webex-bot-token", email: str = "dana@example.com"):
        super().__init__()
        self.token = token
        self.email = email
        self._numbers = itertools.count(2551234567)

    def settings(self, **overrides):
        """Settings that point the Webex adapter at this peer with its token."""
        return base_settings(**{"webex_token": self.token, "webex_api_base": f"{self.url}/v1", **overrides})

    def error_body(self, status: int, message: str):
        return {"message": message, "errors": [{"description": message}], "trackingId": f"ROUTER_{secrets.token_hex(6)}"}

    def authorize(self, request: Recorded) -> Reply | None:
        if request.bearer != self.token:
            return self.error(401, "The request requires a valid access token set in the Authorization request header.")
        return None

    def get_me(self, request: Recorded) -> Reply:
        return Reply(200, {"id": "Y2lzY29zcGFyazovL3VzL1BFT1BMRS8x", "emails": [self.email], "displayName": "Dana Reyes"})

    def _invalid(self, body: dict) -> Reply | None:
        start, end = parse_iso(body.get("start")), parse_iso(body.get("end"))
        if start is None or end is None:
            return self.error(400, "start and end must be ISO 8601 date-times with an offset.")
        if end <= start:
            return self.error(400, "end must be after start.")
        if body.get("timezone") and body["timezone"] not in _ZONES:
            return self.error(400, f"Invalid timezone: {body['timezone']}.")
        return None

    def create_meeting(self, request: Recorded) -> Reply:
        body = request.json
        refused = self.missing_fields(body, ("title", "start", "end")) or self._invalid(body)
        if refused:
            return refused
        meeting_id = secrets.token_hex(16)
        number = str(next(self._numbers))
        meeting = {
            "id": meeting_id, "meetingNumber": number, "title": body["title"], "agenda": body.get("agenda", ""),
            "password": body.get("password") or f"Pw{secrets.token_hex(3)}", "meetingType": "meetingSeries",
            "state": "active", "timezone": body.get("timezone", "UTC"), "start": body["start"], "end": body["end"],
            "hostEmail": self.email, "hostKey": "123456", "siteUrl": "peer.webex.com",
            "webLink": f"https://peer.webex.com/peer/j.php?MTID=m{meeting_id}",
            "sipAddress": f"{number}@peer.webex.com",
            "enabledAutoRecordMeeting": bool(body.get("enabledAutoRecordMeeting")),
            "allowAnyUserToBeCoHost": bool(body.get("allowAnyUserToBeCoHost")),
            "telephony": {"accessCode": number, "callInNumbers": [
                {"label": "US Toll", "callInNumber": "+1-415-655-0001", "tollType": "toll"}]},
        }
        self.keep(meeting_id, meeting)
        return Reply(200, meeting)

    def list_meetings(self, request: Recorded) -> Reply:
        since, until = parse_iso(request.query.get("from")), parse_iso(request.query.get("to"))
        def in_window(meeting: dict) -> bool:
            start = parse_iso(meeting["start"])
            return (since is None or start >= since) and (until is None or start < until)

        with self._lock:
            items = [m for m in self.meetings.values() if in_window(m)]
        return Reply(200, {"items": items[: int(request.query.get("max", 10))]})

    def replace_meeting(self, request: Recorded) -> Reply:
        meeting = self.stored(request)
        if meeting is None:
            return self.not_found(request)
        body = request.json
        # Webex's PUT replaces the meeting: title, password, start and end are all required.
        refused = self.missing_fields(body, ("title", "password", "start", "end")) or self._invalid(body)
        if refused:
            return refused
        with self._lock:
            meeting.update({k: v for k, v in body.items() if k in meeting})
        return Reply(200, meeting)
