"""A loopback GoToMeeting: the G2M REST API under /G2M/rest, with one bearer token."""
from __future__ import annotations

import itertools

from . import base_settings
from .http_peer import HttpPeer, Recorded, Reply, parse_iso

_FIELDS = ("subject", "starttime", "endtime", "passwordrequired", "conferencecallinfo", "meetingtype")
_CALL_MODES = {"pstn", "free", "hybrid", "private", "voip"}


def _goto_time(value: str) -> str:
    """GoTo lists times as `2026-12-07T14:00:00.+0000`."""
    return parse_iso(value).strftime("%Y-%m-%dT%H:%M:%S.+0000")


class GoToPeer(HttpPeer):
    """Accepts one token and keeps its organizer's meetings in memory."""

    routes = [
        ("POST", r"/G2M/rest/meetings", "create_meeting"),
        ("GET", r"/G2M/rest/upcomingMeetings", "upcoming_meetings"),
        ("GET", r"/G2M/rest/meetings/(?P<id>[^/]+)", "get_meeting"),
        ("PUT", r"/G2M/rest/meetings/(?P<id>[^/]+)", "update_meeting"),
        ("DELETE", r"/G2M/rest/meetings/(?P<id>[^/]+)", "delete_meeting"),
    ]

    def __init__(self, *, token: str = "goto-access-token"):
        super().__init__()
        self.token = token
        self._ids = itertools.count(123456701)

    def settings(self, **overrides):
        """Settings that point the GoToMeeting adapter at this peer with its token."""
        return base_settings(**{"goto_token": self.token, "goto_api_base": f"{self.url}/G2M/rest", **overrides})

    def error_body(self, status: int, message: str):
        code = {400: "InvalidRequest", 401: "InvalidToken", 404: "NoSuchMeeting"}.get(status, "InternalError")
        return {"int_err_code": code, "msg": message}

    def authorize(self, request: Recorded) -> Reply | None:
        if request.bearer != self.token:
            return self.error(401, "The token is invalid or expired.")
        return None

    def _invalid(self, body) -> Reply | None:
        refused = self.missing_fields(body, _FIELDS)
        if refused:
            return refused
        start, end = parse_iso(body["starttime"]), parse_iso(body["endtime"])
        if start is None or end is None or end <= start:
            return self.error(400, "starttime and endtime must be ISO 8601 times, endtime after starttime.")
        if not isinstance(body["passwordrequired"], bool) or str(body["conferencecallinfo"]).lower() not in _CALL_MODES:
            return self.error(400, "Invalid passwordrequired or conferencecallinfo.")
        return None

    def _schedule(self, body: dict) -> dict:
        return {"subject": body["subject"], "startTime": _goto_time(body["starttime"]),
                "endTime": _goto_time(body["endtime"]), "passwordRequired": body["passwordrequired"]}

    def create_meeting(self, request: Recorded) -> Reply:
        body = request.json
        refused = self._invalid(body)
        if refused:
            return refused
        meeting_id = str(next(self._ids))
        call_info = f"United States: +1 (571) 317-3122\nAccess Code: {meeting_id[:3]}-{meeting_id[3:6]}-{meeting_id[6:]}"
        meeting = {"meetingId": meeting_id, "meetingType": body["meetingtype"], "status": "INACTIVE",
                   "conferenceCallInfo": call_info, "maxParticipants": 250, **self._schedule(body)}
        self.keep(meeting_id, meeting)  # as the listings show it
        # The documented answer: an array holding one object, ids as numbers.
        return Reply(201, [{"joinURL": f"https://global.gotomeeting.com/join/{meeting_id}", "meetingid": int(meeting_id),
                            "maxParticipants": 250, "uniqueMeetingId": 200000000000 + int(meeting_id),
                            "conferenceCallInfo": call_info}])

    def upcoming_meetings(self, request: Recorded) -> Reply:
        with self._lock:
            return Reply(200, [dict(m, meetingId=int(m["meetingId"])) for m in self.meetings.values()])

    def present(self, meeting: dict):
        return [meeting]  # GET /meetings/{id} answers an array too

    def update_meeting(self, request: Recorded) -> Reply:
        meeting = self.stored(request)
        if meeting is None:
            return self.not_found(request)
        refused = self._invalid(request.json)
        if refused:
            return refused
        with self._lock:
            meeting.update(self._schedule(request.json))
        return Reply(204)
