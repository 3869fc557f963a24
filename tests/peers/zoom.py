"""A loopback Zoom: Server-to-Server OAuth at /oauth/token and the Meetings API under /v2."""
from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from zoneinfo import available_timezones

from . import base_settings
from .http_peer import HttpPeer, Recorded, Reply, parse_iso

_ZONES = available_timezones()
_PASSCODE = re.compile(r"^[A-Za-z0-9@_*-]{1,10}$")
_ZOOM_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ?$")  # Zoom's documented forms
_SCHEDULE_FIELDS = ("topic", "start_time", "duration", "timezone", "agenda")  # what a PATCH may change
_SUMMARY_FIELDS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone",
                   "agenda", "created_at", "join_url")


def _zoom_time_ok(value) -> bool:
    # Zoom takes UTC with a Z or a local time read in `timezone`; either must be a real time.
    return isinstance(value, str) and bool(_ZOOM_TIME.match(value)) and parse_iso(value.rstrip("Z") + "Z") is not None


class ZoomPeer(HttpPeer):
    """Issues tokens for one app's credentials and keeps one user's meetings in memory."""

    not_found_message = "Meeting does not exist: {id}."
    routes = [
        ("POST", r"/oauth/token", "issue_token"),
        ("GET", r"/v2/users/(?P<user>[^/]+)", "get_user"),
        ("POST", r"/v2/users/(?P<user>[^/]+)/meetings", "create_meeting"),
        ("GET", r"/v2/users/(?P<user>[^/]+)/meetings", "list_meetings"),
        ("GET", r"/v2/meetings/(?P<id>[^/]+)", "get_meeting"),
        ("PATCH", r"/v2/meetings/(?P<id>[^/]+)", "update_meeting"),
        ("DELETE", r"/v2/meetings/(?P<id>[^/]+)", "delete_meeting"),
    ]

    def __init__(self, *, account_id: str = "acct-42", client_id: str = "client-id",
                 client_secret: str = "client-secret", user_email: str = "dana@example.com",
                 token_ttl: int = 3599, dial_in: bool = True):
        super().__init__()
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.user_email = user_email
        self.token_ttl = token_ttl
        self.dial_in = dial_in
        self.max_page_size = 300
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._ids = itertools.count(85746065001)

    def settings(self, **overrides):
        """Settings that point the Zoom adapter at this peer with its credentials."""
        return base_settings(**{
            "zoom_account_id": self.account_id, "zoom_client_id": self.client_id,
            "zoom_client_secret": self.client_secret, "zoom_api_base": f"{self.url}/v2",
            "zoom_oauth_url": f"{self.url}/oauth/token", **overrides,
        })

    def revoke_tokens(self) -> None:
        """Invalidate every token issued, as Zoom does when an app's secret is rotated."""
        with self._lock:
            self.tokens.clear()

    @property
    def token_requests(self) -> list[Recorded]:
        return self.calls("POST", "/oauth/token")

    def error_body(self, status: int, message: str):
        return {"code": {400: 300, 401: 124, 404: 3001, 429: 429}.get(status, status), "message": message}

    # -- auth -----------------------------------------------------------------------------------
    def authorize(self, request: Recorded) -> Reply | None:
        if request.path == "/oauth/token":
            return None
        with self._lock:
            expiry = self.tokens.get(request.bearer or "")
        if expiry is None or expiry < time.monotonic():
            return self.error(401, "Invalid access token.")
        return None

    def issue_token(self, request: Recorded) -> Reply:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        except ValueError:
            client = ""
        if client != f"{self.client_id}:{self.client_secret}":
            return Reply(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        if request.query.get("grant_type") != "account_credentials":
            return Reply(400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"})
        if request.query.get("account_id") != self.account_id:
            return Reply(400, {"reason": "Invalid request : Missing or invalid account_id.", "error": "invalid_request"})
        token = f"zoom-{secrets.token_hex(8)}"
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return Reply(200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl,
                           "scope": "meeting:write:admin meeting:read:admin user:read:admin"})

    # -- users and meetings -------------------------------------------------------------------------
    def _unknown_user(self, request: Recorded) -> Reply | None:
        if request.params["user"] in ("me", self.user_email):
            return None
        return self.error(404, f"User does not exist: {request.params['user']}.")

    def get_user(self, request: Recorded) -> Reply:
        return self._unknown_user(request) or Reply(200, {"id": "host-1", "email": self.user_email, "type": 2})

    def _invalid_schedule(self, body: dict) -> Reply | None:
        if "start_time" in body and not _zoom_time_ok(body["start_time"]):
            return self.error(400, f"Invalid field: start_time '{body['start_time']}'.")
        if "duration" in body and not (isinstance(body["duration"], int) and body["duration"] > 0):
            return self.error(400, "Invalid field: duration.")
        if "timezone" in body and body["timezone"] not in _ZONES:
            return self.error(400, f"Invalid field: timezone '{body['timezone']}'.")
        if "password" in body and not _PASSCODE.match(str(body["password"])):
            return self.error(400, "Passcode may only contain the characters [a-z A-Z 0-9 @ - _ *] and max 10 characters.")
        return None

    def create_meeting(self, request: Recorded) -> Reply:
        body = request.json
        refused = (self._unknown_user(request)
                   or self.missing_fields(body, ("topic", "type", "start_time", "duration", "timezone"))
                   or self._invalid_schedule(body))
        if refused:
            return refused
        if body["type"] != 2:
            return self.error(400, "Only scheduled meetings (type 2) are supported here.")
        meeting_id = next(self._ids)
        password = body.get("password") or secrets.token_hex(3)
        meeting = {
            "uuid": base64.b64encode(secrets.token_bytes(16)).decode(), "id": meeting_id, "host_id": "host-1",
            "host_email": self.user_email, "topic": body["topic"], "type": 2, "status": "waiting",
            "start_time": body["start_time"], "duration": body["duration"], "timezone": body["timezone"],
            "agenda": body.get("agenda", ""), "created_at": "2026-11-25T20:53:09Z",
            "start_url": f"https://us02web.zoom.us/s/{meeting_id}?zak=host-{secrets.token_hex(6)}",
            "join_url": f"https://us02web.zoom.us/j/{meeting_id}?pwd={secrets.token_hex(6)}",
            "password": password, "pstn_password": "".join(str(ord(c) % 10) for c in password),
            "settings": {**(body.get("settings") or {}), "global_dial_in_numbers": [
                {"country": "US", "country_name": "US", "city": "New York", "number": "+1 646 558 8656", "type": "toll"},
                {"country": "DE", "country_name": "Germany", "number": "+49 69 7104 9922", "type": "toll"},
            ] if self.dial_in else []},
        }
        self.keep(str(meeting_id), meeting)
        return Reply(201, meeting)

    def list_meetings(self, request: Recorded) -> Reply:
        refused = self._unknown_user(request)
        if refused:
            return refused
        size = min(int(request.query.get("page_size", 30)), self.max_page_size)
        offset = int(request.query.get("next_page_token") or 0)
        with self._lock:
            everything = sorted(self.meetings.values(), key=lambda m: m["id"])
        page = everything[offset:offset + size]
        more = offset + size < len(everything)
        return Reply(200, {
            "page_size": size, "total_records": len(everything),
            "next_page_token": str(offset + size) if more else "",
            "meetings": [{k: m[k] for k in _SUMMARY_FIELDS} for m in page],
        })

    def update_meeting(self, request: Recorded) -> Reply:
        meeting = self.stored(request)
        if meeting is None:
            return self.not_found(request)
        body = request.json
        if not isinstance(body, dict):
            return self.error(400, "Request body must be a JSON object.")
        refused = self._invalid_schedule(body)
        if refused:
            return refused
        with self._lock:
            meeting.update({k: v for k, v in body.items() if k in _SCHEDULE_FIELDS})
        return Reply(204)
