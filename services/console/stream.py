"""The activity stream as the owner console reads it: newest first, each session's entries on
their own rows, filtered, scoped to the owner's pages, paginated by an opaque keyset cursor on
(at, id) so page 1000 costs what page 1 costs.

Indexes (migration 0006): activity (at, id) for the whole stream, (booking_id, at, id) when the
filters narrow the bookings first (a customer's email), (action, at, id) for one kind of entry;
bookings (page_slug, event_type_id) and lower(customer_email).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import false, func, literal, select, tuple_
from sqlalchemy.orm import Session as Db

from models import Activity, Booking, Session, UTCDateTime

from ..errors import InvalidInput
from .accounts import OwnerIdentity
from .scope import owner_pages

MAX_PAGE_SIZE = 200
BOOKING_STATUSES = ("pending", "awaiting_approval", "confirmed", "cancelled", "failed")
# The entries an owner filters by, grouped as the console's filter shows them.
ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "Bookings": ("booking.requested", "booking.awaiting_approval", "booking.approved", "booking.declined",
                 "booking.withdrawn", "booking.confirmed", "booking.failed", "booking.cancelled"),
    "Sessions": ("session.held", "session.confirmed", "session.cancelled", "session.rescheduled",
                 "cancel.refused", "reschedule.refused"),
    "Money": ("payment.authorized", "payment.captured", "fee.charged", "fee.declined", "refund.requested",
              "refund.succeeded", "refund.failed", "refund.refused"),
    "Meetings and calendars": ("meeting.created", "meeting.moved", "meeting.deleted", "calendar.synced",
                               "calendar.sync_failed", "reminder.sent"),
}
KNOWN_ACTIONS = tuple(a for group in ACTION_GROUPS.values() for a in group)
MAX_ACTION_LENGTH = 64


@dataclass(frozen=True)
class StreamFilters:
    """Every filter is optional; `since` is inclusive, `until` exclusive (aware datetimes)."""

    page: str | None = None
    event_type_id: int | None = None
    customer_email: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    actions: tuple[str, ...] = ()
    status: str | None = None
    booking_id: str | None = None

    def __post_init__(self):
        if self.status is not None and self.status not in BOOKING_STATUSES:
            raise InvalidInput("invalid_status", f"status must be one of {', '.join(BOOKING_STATUSES)}")
        for action in self.actions:
            if not isinstance(action, str) or not action or len(action) > MAX_ACTION_LENGTH:
                raise InvalidInput("invalid_action", "an action is a name like session.cancelled")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise InvalidInput("invalid_date", f"{name} needs a timezone")

    @property
    def narrows_bookings(self) -> bool:
        return any(v is not None for v in (self.page, self.event_type_id, self.customer_email, self.status))


@dataclass(frozen=True)
class StreamRow:
    id: int
    at: datetime
    action: str
    actor: str
    details: dict[str, Any]
    booking_id: str | None
    session_id: str | None
    page_slug: str | None = None
    event_name: str = ""
    customer_name: str = ""
    customer_email: str = ""
    booking_status: str | None = None
    session_number: int | None = None
    sessions_in_booking: int | None = None
    session_start: datetime | None = None
    session_status: str | None = None


@dataclass(frozen=True)
class StreamPage:
    rows: list[StreamRow] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(at: datetime, entry_id: int) -> str:
    raw = json.dumps([at.isoformat(), entry_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        if len(cursor) > 200:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, entry_id = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or not isinstance(entry_id, int):
            raise ValueError
        return at, entry_id
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidInput("invalid_cursor", "the page link is damaged; start again from the first page")


def owner_page_slugs(db: Db, owner: OwnerIdentity) -> list[str] | None:
    """The owner's page slugs (None for a site admin: every page). Read first and given to the
    stream's query as constants, so the planner estimates from the column statistics (a
    subquery there made it misjudge an event type's bookings a hundredfold)."""
    scope = owner_pages(owner)
    return None if scope is None else list(db.execute(scope).scalars())


def stream_query(pages: list[str] | None, filters: StreamFilters, after: tuple[datetime, int] | None, limit: int):
    """The one SELECT of a page (exposed for the benchmark's EXPLAIN); `pages` from
    `owner_page_slugs`."""
    query = select(Activity)
    if pages is not None or filters.narrows_bookings:
        query = query.join(Booking, Booking.id == Activity.booking_id)
        if pages is not None and not (filters.page is not None and filters.page in pages):
            query = query.where(Booking.page_slug.in_(pages) if pages else false())
        if filters.page is not None:
            query = query.where(Booking.page_slug == filters.page)
        if filters.event_type_id is not None:
            query = query.where(Booking.event_type_id == filters.event_type_id)
        if filters.customer_email is not None:
            query = query.where(func.lower(Booking.customer_email) == filters.customer_email.strip().lower())
        if filters.status is not None:
            query = query.where(Booking.status == filters.status)
    if filters.booking_id is not None:
        query = query.where(Activity.booking_id == filters.booking_id)
    if filters.actions:
        query = query.where(Activity.action.in_(list(filters.actions)))
    if filters.since is not None:
        query = query.where(Activity.at >= filters.since)
    if filters.until is not None:
        query = query.where(Activity.at < filters.until)
    if after is not None:
        at, entry_id = after
        query = query.where(tuple_(Activity.at, Activity.id) < tuple_(literal(at, UTCDateTime()), literal(entry_id)))
    return query.order_by(Activity.at.desc(), Activity.id.desc()).limit(limit)


def read_stream(db: Db, owner: OwnerIdentity, filters: StreamFilters = StreamFilters(), *,
                cursor: str | None = None, limit: int = 50) -> StreamPage:
    """One page of the stream, newest first, and the cursor of the next page (None at the end)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput("invalid_limit", f"a page holds 1 to {MAX_PAGE_SIZE} entries")
    after = decode_cursor(cursor) if cursor else None
    entries = list(db.execute(stream_query(owner_page_slugs(db, owner), filters, after, limit + 1)).scalars())
    more = len(entries) > limit
    entries = entries[:limit]
    rows = _describe(db, entries)
    next_cursor = encode_cursor(entries[-1].at, entries[-1].id) if more else None
    return StreamPage(rows, next_cursor)


def _describe(db: Db, entries: Sequence[Activity]) -> list[StreamRow]:
    """Each entry with its booking and session: two plain queries for the whole page (columns,
    not ORM objects: a page is read often and thrown away)."""
    booking_ids = list({e.booking_id for e in entries if e.booking_id})
    bookings: dict[str, Any] = {}
    sessions: dict[str, Any] = {}
    counts: dict[str, int] = {}
    if booking_ids:
        bookings = {row.id: row for row in db.execute(
            select(Booking.id, Booking.page_slug, Booking.customer_name, Booking.customer_email, Booking.status,
                   Booking.terms).where(Booking.id.in_(booking_ids)))}
        for row in db.execute(select(Session.id, Session.booking_id, Session.number, Session.start_at, Session.status)
                              .where(Session.booking_id.in_(booking_ids))):
            sessions[row.id] = row
            counts[row.booking_id] = counts.get(row.booking_id, 0) + 1
    rows = []
    for e in entries:
        b = bookings.get(e.booking_id) if e.booking_id else None
        s = sessions.get(e.session_id) if e.session_id else None
        terms = (b.terms or {}) if b else {}
        rows.append(StreamRow(
            id=e.id, at=e.at, action=e.action, actor=e.actor, details=e.details or {},
            booking_id=e.booking_id, session_id=e.session_id,
            page_slug=b.page_slug if b else None,
            event_name=terms.get("event_name") or terms.get("page_name") or "",
            customer_name=b.customer_name if b else "", customer_email=b.customer_email if b else "",
            booking_status=b.status if b else None,
            session_number=s.number if s else (e.details or {}).get("number"),
            sessions_in_booking=counts.get(e.booking_id) if b else None,
            session_start=s.start_at if s else None, session_status=s.status if s else None,
        ))
    return rows
