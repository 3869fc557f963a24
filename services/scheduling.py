"""Availability against the database: which offering, which rules, which times are taken.

The pure slot arithmetic lives in `services.availability`; this module feeds it from the
catalog (page hours, event-type scheduling) and from the owner's active sessions.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session as Db

from models import ACTIVE_SESSION_STATES, BookingPage, EventType, Owner, Session

from .availability import MAX_YEAR, MIN_YEAR, Interval, SlotRules, free_slots, to_utc_iso
from .errors import InvalidInput, NotFound
from .limits import filter_full

# Extra busy times for an owner (e.g. their CalDAV calendar): (owner, start, end) -> intervals.
BusySource = Callable[[Owner, datetime, datetime], Sequence[Interval]]


@dataclass(frozen=True)
class Offering:
    page: BookingPage
    event_type: EventType
    owner: Owner

    @property
    def is_package(self) -> bool:
        return self.event_type.sessions_per_booking > 1


def split_target(target: str) -> tuple[str, str | None]:
    """'dana/consult-10' -> ('dana', 'consult-10'); 'dana' -> ('dana', None)."""
    page, _, event_type = target.partition("/")
    return page, (event_type or None)


def resolve_offering(db: Db, page_slug: str, event_type_slug: str | None) -> Offering:
    """The page, event type and owner a request or query is about; clear errors otherwise."""
    if not isinstance(page_slug, str):
        page_slug = None
    # One round trip for the page, its owner and the event type asked for (the one with the
    # empty slug on a page booked directly); the error paths below ask again for what they name.
    row = None
    if page_slug is not None:
        et_join = and_(
            EventType.page_slug == BookingPage.slug,
            EventType.slug == (event_type_slug or ""),
            or_(EventType.active.is_(True), BookingPage.has_event_types.is_(False)),
        )
        row = db.execute(
            select(BookingPage, Owner, EventType)
            .join(Owner, Owner.id == BookingPage.owner_id)
            .outerjoin(EventType, et_join)
            .where(BookingPage.slug == page_slug)
        ).first()
    if row is None:
        raise NotFound("unknown_booking_page", f"booking page {page_slug!r} does not exist; check the slug or run `sessionpack config apply`")
    page, owner, et = row
    if page.has_event_types:
        if not event_type_slug:
            slugs = [s for (s,) in db.execute(select(EventType.slug).filter_by(page_slug=page.slug, active=True))]
            raise InvalidInput("event_type_required", f"booking page {page.slug!r} has event types; name one of: {', '.join(sorted(slugs))}")
        if et is None:
            raise NotFound("unknown_event_type", f"event type {event_type_slug!r} does not exist on booking page {page.slug!r}; check the slug")
    else:
        if event_type_slug:
            raise InvalidInput("unknown_event_type", f"booking page {page.slug!r} is booked directly and has no event types; leave event_type out")
        if et is None:
            et = db.execute(select(EventType).filter_by(page_slug=page.slug, slug="")).scalar_one()
    return Offering(page=page, event_type=et, owner=owner)


def slot_rules(page: BookingPage, et: EventType) -> SlotRules:
    return SlotRules.from_config(
        page.availability, page.timezone, et.duration_minutes,
        {
            "slot_interval_minutes": et.slot_interval_minutes,
            "min_notice_minutes": et.min_notice_minutes,
            "buffer_before_minutes": et.buffer_before_minutes,
            "buffer_after_minutes": et.buffer_after_minutes,
        },
    )


def session_busy(db: Db, owner_id: str, start: datetime, end: datetime,
                 exclude_session_ids: Sequence[str] = ()) -> list[Interval]:
    """Blocks (buffers included) of the owner's active sessions that touch [start, end)."""
    query = select(Session.block_start, Session.block_end).where(
        Session.owner_id == owner_id,
        Session.status.in_(ACTIVE_SESSION_STATES),
        Session.block_start < end,
        Session.block_end > start,
    )
    if exclude_session_ids:
        query = query.where(Session.id.not_in(list(exclude_session_ids)))
    return [(s, e) for s, e in db.execute(query)]


def owner_busy(db: Db, owner: Owner, start: datetime, end: datetime, *,
               extra: BusySource | None = None, exclude_session_ids: Sequence[str] = ()) -> list[Interval]:
    busy = session_busy(db, owner.id, start, end, exclude_session_ids)
    if extra is not None:
        busy.extend(extra(owner, start, end))
    return busy


def _parse_date(text: str, option: str) -> date:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput("invalid_date", f"{option} {text!r} is not a date; write it as YYYY-MM-DD")
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise InvalidInput("invalid_date", f"{option} {text} is out of range; use a date between years {MIN_YEAR} and {MAX_YEAR}")
    return day


def list_slots(db: Db, target: str, from_text: str, to_text: str, tz: str | None, *,
               now: datetime, extra_busy: BusySource | None = None, max_days: int = 366) -> list[str]:
    """Free start times (ISO UTC) from the start of `from` to the end of `to`, dates read in `tz`
    (the page's timezone by default)."""
    page_slug, event_type_slug = split_target(target)
    offering = resolve_offering(db, page_slug, event_type_slug)
    zone_name = tz or offering.page.timezone
    try:
        zone = ZoneInfo(zone_name)
    except Exception:
        raise InvalidInput("invalid_timezone", f"--tz {zone_name!r} is not a known timezone; use an IANA name like Europe/Berlin")
    first, last = _parse_date(from_text, "--from"), _parse_date(to_text, "--to")
    if last < first:
        raise InvalidInput("invalid_date_range", f"--to {last} is before --from {first}; swap them")
    if (last - first).days > max_days:
        raise InvalidInput("invalid_date_range", f"at most {max_days} days at a time; narrow --from/--to")
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    rules = slot_rules(offering.page, offering.event_type)
    busy = owner_busy(db, offering.owner, start - timedelta(days=1), end + timedelta(days=1), extra=extra_busy)
    slots = free_slots(rules, start, end, now=now, busy=busy)
    slots = filter_full(db, offering.event_type, offering.owner.timezone, slots)
    return [to_utc_iso(s) for s in slots]
