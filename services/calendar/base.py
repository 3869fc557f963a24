"""The owner-calendar interface and the connection settings an owner's config names.

An owner connects one calendar: `{"caldav_url", "username", "password_env"}`. The password is
never stored; it is read from the named environment variable when the calendar is used, so a
rotated password takes effect without touching the configuration.
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from datetime import datetime

from models import Owner

from ..availability import Interval
from ..errors import PermanentError
from ..notifications.views import BookingView, SessionView


@dataclass(frozen=True)
class CalendarConnection:
    """Where an owner's calendar lives and how to log in to it."""

    url: str  # the calendar collection itself, ending in '/'
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print the password in logs or tracebacks
        return f"CalendarConnection(url={self.url!r}, username={self.username!r})"


def connection_for(owner: Owner) -> CalendarConnection | None:
    """The owner's calendar connection, or None when the owner has not connected a calendar.

    Raises PermanentError when the password variable is not set: retrying cannot fix that,
    the operator has to set the variable for the worker (and the CLI) and restart it.
    """
    config = owner.calendar
    if not config:
        return None
    variable = config.get("password_env") or ""
    password = os.environ.get(variable) if variable else None
    if password is None:
        raise PermanentError(
            "calendar_password_missing",
            f"the calendar of owner {owner.id!r} needs its password in the environment variable "
            f"{variable!r}, which is not set; set it for the worker and the CLI and restart them",
        )
    url = config["caldav_url"]
    return CalendarConnection(url=url if url.endswith("/") else url + "/",
                              username=config.get("username", ""), password=password)


class CalendarSync(abc.ABC):
    """An owner's calendar: sessions written into it, busy times read out of it.

    Every method takes the owner (only `id` and `calendar` are used) and raises
    TransientError when the calendar may answer later (network, 5xx, rate limit) and
    PermanentError when it refused for good (credentials, missing calendar).
    """

    @abc.abstractmethod
    def put_event(self, owner: Owner, view: BookingView, session: SessionView) -> None:
        """Create or replace the session's event, addressed by its UID: writing the same
        session twice leaves one event, and a raised SEQUENCE updates it in place."""

    @abc.abstractmethod
    def delete_event(self, owner: Owner, uid: str) -> None:
        """Delete the event of the session with this UID; an event already gone counts as deleted."""

    @abc.abstractmethod
    def busy(self, owner: Owner, start: datetime, end: datetime) -> list[Interval]:
        """The owner's busy times that touch [start, end), as aware UTC intervals, leaving out
        the events of our own sessions (availability counts those from the database)."""

    @abc.abstractmethod
    def check(self, owner: Owner) -> str:
        """Raise when the calendar cannot be used; otherwise a one-line description (for doctor)."""
