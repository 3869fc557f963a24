"""`CalendarSync` over CalDAV (RFC 4791) with the `caldav` library.

Each session's event lives at `<calendar>/<uid>.ics`: the resource name is the session's UID,
so writing it again (a redelivered task, a reschedule with a raised SEQUENCE) replaces that one
resource instead of adding a second event, and a cancel deletes exactly it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator
from urllib.parse import quote
from zoneinfo import ZoneInfo

import caldav
from caldav.elements import cdav, dav
from caldav.lib import error as dav_error

from models import Owner

from ..availability import Interval
from ..errors import PermanentError, ServiceError, TransientError
from ..notifications.views import BookingView, SessionView
from .base import CalendarConnection, CalendarSync, connection_for
from .events import busy_intervals, owner_event

# Statuses worth another try later; every other 4xx is a refusal a retry would only repeat.
_RETRY_STATUSES = {408, 425, 429}


class CaldavCalendar(CalendarSync):
    """Owners' CalDAV calendars. One client per calendar connection is kept, so its HTTP
    connection and negotiated authentication are reused across calls."""

    def __init__(self, settings) -> None:
        self._timeout = settings.http_timeout_seconds
        self._clients: dict[CalendarConnection, caldav.DAVClient] = {}
        self._lock = threading.Lock()

    # -- CalendarSync ---------------------------------------------------------------------------
    def put_event(self, owner: Owner, view: BookingView, session: SessionView) -> None:
        conn, calendar = self._open(owner)
        event = caldav.Event(client=calendar.client, url=_event_url(calendar, session.uid),
                             data=owner_event(view, session), parent=calendar)
        with _translated(owner, conn, f"writing the event of session {session.number}"):
            # increase_seqno=False: SEQUENCE is ours (it rises with each reschedule), and the
            # library would otherwise add one on every write, redeliveries included.
            event.save(increase_seqno=False)

    def delete_event(self, owner: Owner, uid: str) -> None:
        conn, calendar = self._open(owner)
        event = caldav.Event(client=calendar.client, url=_event_url(calendar, uid), parent=calendar)
        with _translated(owner, conn, f"deleting the event {uid}"):
            event.delete()  # unconditional; the library counts 404 as deleted

    def busy(self, owner: Owner, start: datetime, end: datetime) -> list[Interval]:
        if not owner.calendar:
            return []
        conn, calendar = self._open(owner)
        with _translated(owner, conn, "reading busy times"):
            # expand: each occurrence of a recurring appointment comes back as its own event.
            found = calendar.search(start=start, end=end, event=True, expand=True)
            events = [e for obj in found for e in obj.icalendar_instance.walk("VEVENT")]
        return busy_intervals(events, ZoneInfo(owner.timezone))

    def check(self, owner: Owner) -> str:
        conn, calendar = self._open(owner)
        with _translated(owner, conn, "checking the calendar"):
            props = calendar.get_properties([dav.ResourceType(), dav.DisplayName()])
        if cdav.Calendar.tag not in (props.get(dav.ResourceType.tag) or []):
            raise PermanentError("calendar_not_found", f"{conn.url} is not a calendar collection; "
                                 f"set caldav_url of owner {owner.id!r} to the calendar itself")
        name = props.get(dav.DisplayName.tag)
        return f"{conn.url} ({name})" if name else conn.url

    # -- internals ------------------------------------------------------------------------------
    def _open(self, owner: Owner) -> tuple[CalendarConnection, caldav.Calendar]:
        conn = connection_for(owner)
        if conn is None:
            raise PermanentError("calendar_not_connected", f"owner {owner.id!r} has no calendar in the configuration")
        with self._lock:
            client = self._clients.get(conn)
            if client is None:
                # The URL names the calendar itself: no service discovery (RFC 6764) needed.
                client = caldav.DAVClient(url=conn.url, username=conn.username, password=conn.password,
                                          timeout=self._timeout, enable_rfc6764=False)
                self._clients[conn] = client
        return conn, client.calendar(url=conn.url)


def _event_url(calendar: caldav.Calendar, uid: str):
    return calendar.url.join(quote(uid, safe="@") + ".ics")


@contextmanager
def _translated(owner: Owner, conn: CalendarConnection, doing: str) -> Iterator[None]:
    """Library and network errors as our TransientError / PermanentError, with a message that
    says which calendar, what we were doing, and what to fix."""
    try:
        yield
    except ServiceError:
        raise
    except dav_error.RateLimitError as exc:
        raise TransientError("calendar_unavailable", f"{doing}: {conn.url} asked us to slow down (HTTP {exc.status})",
                             retry_after=exc.retry_after_seconds) from exc
    except dav_error.AuthorizationError as exc:
        raise PermanentError(
            "calendar_auth_failed",
            f"{doing}: {conn.url} refused user {conn.username!r} (HTTP {exc.status}); check the username of "
            f"owner {owner.id!r} and the password in {owner.calendar.get('password_env')!r}") from exc
    except dav_error.DAVError as exc:
        status = exc.status
        if status is None or status >= 500 or status in _RETRY_STATUSES:
            raise TransientError("calendar_unavailable", f"{doing}: {conn.url} failed (HTTP {status})") from exc
        if status in (404, 409):  # 409 on PUT: the calendar collection the event goes into is missing
            raise PermanentError("calendar_not_found", f"{doing}: there is no calendar at {conn.url} (HTTP {status}); "
                                 f"check caldav_url of owner {owner.id!r}") from exc
        raise PermanentError("calendar_refused", f"{doing}: {conn.url} refused (HTTP {status})") from exc
    except OSError as exc:  # connection refused, timeout, TLS: the HTTP libraries' errors are OSErrors
        raise TransientError("calendar_unavailable", f"{doing}: cannot reach {conn.url}: {type(exc).__name__}") from exc
