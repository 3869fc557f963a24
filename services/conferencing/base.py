"""The `ConferencingProvider` interface: one meeting per session, created, moved and deleted."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MeetingRequest:
    """What a provider needs to make one session's meeting."""

    session_id: str  # ours; providers that allow it carry it in the meeting for recovery
    topic: str
    start: datetime  # aware, UTC
    duration_minutes: int
    timezone: str  # the owner's zone, for providers that display one
    host_email: str | None = None


@dataclass(frozen=True)
class MeetingDetails:
    """What we keep of a meeting. `host_url` is the owner's start link: never shown to customers."""

    provider: str
    external_id: str
    join_url: str
    password: str | None = None
    dial_in: str | None = None
    host_url: str | None = None


class ConferencingProvider(abc.ABC):
    """A conferencing backend. Errors are `TransientError` (retry) or `PermanentError` (fail)."""

    name: str

    @abc.abstractmethod
    def create(self, request: MeetingRequest) -> MeetingDetails:
        """Create the meeting and return its details."""

    @abc.abstractmethod
    def update(self, external_id: str, request: MeetingRequest) -> MeetingDetails | None:
        """Move the meeting to the request's time. Returns new details when they changed."""

    @abc.abstractmethod
    def delete(self, external_id: str) -> None:
        """Delete the meeting. A meeting that is already gone counts as deleted (idempotent)."""

    def find(self, request: MeetingRequest) -> MeetingDetails | None:
        """A meeting made earlier for this session whose creation we did not record, if the
        provider can tell. Used before a retried create so a redelivered task makes no second one."""
        return None

    def check(self) -> None:
        """Raise when the credentials do not work (for `sessionpack doctor`)."""
