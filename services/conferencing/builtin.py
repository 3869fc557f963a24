"""The builtin provider: a unique, unguessable room link and no API call."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from .base import ConferencingProvider, MeetingDetails, MeetingRequest


class BuiltinProvider(ConferencingProvider):
    """Rooms live under PUBLIC_BASE_URL/room/<id> (the web process sends them on to a Jitsi Meet
    room of that id: web/room.py). The id is derived from the session id and the secret key, so a
    redelivered create gives the same room (idempotent) and nobody can guess one."""

    name = "builtin"
    remote = False

    def __init__(self, public_base_url: str, secret_key: str):
        self.public_base_url = public_base_url.rstrip("/")
        self.secret_key = secret_key

    def _room_id(self, session_id: str) -> str:
        mac = hmac.new(self.secret_key.encode(), f"room:{session_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def create(self, request: MeetingRequest) -> MeetingDetails:
        room = self._room_id(request.session_id)
        return MeetingDetails(
            provider=self.name,
            external_id=room,
            join_url=f"{self.public_base_url}/room/{room}",
            password=f"{secrets.randbelow(10**6):06d}",
            host_url=f"{self.public_base_url}/room/{room}?host=1",
        )

    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        return None  # a room has no time; the link stays valid

    def delete(self, external_id: str) -> None:
        return None
