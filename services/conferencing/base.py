"""The `ConferencingProvider` interface: one meeting per session, created, moved and deleted."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence


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
    # False for a provider whose create() makes no call out (builtin): there is nothing to lose
    # in a crash, so the saga makes its meetings in one transaction instead of two.
    remote: bool = True

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

    def tagged_meetings(self, requests: Sequence[MeetingRequest]) -> dict[str, list[str]]:
        """The external ids of every meeting the provider keeps with one of these sessions' marks
        (what `find()` looks for), by session id; a session with none is absent. The orphan sweep
        (services/conferencing/reconcile.py) deletes those that are not ours. A provider with no
        remote state, or one that cannot tell, has none."""
        return {}

    def check(self) -> None:
        """Raise when the credentials do not work (for `sessionpack doctor`)."""
