"""Owners' calendar busy times for availability, cached for a short while.

`slots` and booking validation ask for the same owner and window again and again (one query
per listed range, one per booking request); a short cache keeps the calendar server out of
that loop while an appointment added there still shows within `calendar_busy_cache_seconds`.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable

from models import Owner

from ..availability import Interval
from ..errors import OperationFailed, ServiceError
from .base import CalendarSync

_Key = tuple[str, str, str, datetime, datetime]


class CaldavBusySource:
    """The container's `busy_source`: (owner, start, end) -> the owner's calendar busy times.

    Owners without a calendar have none. When the calendar cannot be read, it raises
    OperationFailed('calendar_unavailable'): times that cannot be checked are not offered,
    and a booking for them is refused rather than risking a double booking.
    """

    def __init__(self, settings, calendar: CalendarSync | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._calendar = calendar
        self._ttl = settings.calendar_busy_cache_seconds
        self._clock = clock
        self._cache: dict[_Key, tuple[float, list[Interval]]] = {}
        self._lock = threading.Lock()

    @property
    def calendar(self) -> CalendarSync:
        """The backend it reads, built on first use: a service whose owners have no calendar
        never loads the CalDAV client."""
        if self._calendar is None:
            from .caldav_calendar import CaldavCalendar

            self._calendar = CaldavCalendar(self._settings)
        return self._calendar

    def __call__(self, owner: Owner, start: datetime, end: datetime) -> list[Interval]:
        config = owner.calendar
        if not config:
            return []
        # The connection is part of the key: a changed calendar URL or user is read afresh.
        key = (owner.id, config.get("caldav_url", ""), config.get("username", ""), start, end)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return list(cached[1])
        try:
            busy = self.calendar.busy(owner, start, end)
        except ServiceError as exc:
            raise OperationFailed(
                "calendar_unavailable",
                f"the calendar of owner {owner.id!r} cannot be read, so no time is offered until it "
                f"can: {exc.message}") from exc
        with self._lock:
            self._forget_expired(now)
            self._cache[key] = (now + self._ttl, busy)
        return list(busy)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]


def build_busy_source(settings) -> CaldavBusySource:
    """The busy source the wiring puts into the container (`Container.busy_source`)."""
    return CaldavBusySource(settings)
