"""Jitsi Meet: a room per session on a Jitsi server, with no API and no account.

A Jitsi room exists as soon as someone opens its address, so the room's name is the only
secret: `sessionpack-<32 hex>` is an HMAC of the session id with SECRET_KEY (unguessable, and the
same on a redelivered create, so the saga stays idempotent). A rescheduled session keeps its
room (a room has no time); a cancelled session's meeting row is marked deleted, so its join
link is no longer shown anywhere (there is nothing to delete on the server).
"""
from __future__ import annotations

import hashlib
import hmac

from .base import ConferencingProvider, MeetingDetails, MeetingRequest

DEFAULT_JITSI_BASE_URL = "https://meet.jit.si"


class JitsiProvider(ConferencingProvider):
    name = "jitsi"
    remote = False  # create() makes no call out

    def __init__(self, base_url: str, secret_key: str):
        self.base_url = (base_url or DEFAULT_JITSI_BASE_URL).rstrip("/")
        self.secret_key = secret_key

    def room_name(self, session_id: str) -> str:
        mac = hmac.new(self.secret_key.encode(), f"sessionpack/jitsi-room/v1:{session_id}".encode(), hashlib.sha256)
        return f"sessionpack-{mac.hexdigest()[:32]}"

    def create(self, request: MeetingRequest) -> MeetingDetails:
        room = self.room_name(request.session_id)
        return MeetingDetails(provider=self.name, external_id=room, join_url=f"{self.base_url}/{room}")

    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        return None  # the room moves with the session: same name, no time to change

    def delete(self, external_id: str) -> None:
        return None  # nothing lives on the server; the meeting row is marked deleted by the caller

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        return self.create(request)  # the same room every time
