"""What an owner may see: the bookings of their own pages (a site admin: every page)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Booking, BookingPage, EventType

from ..errors import NotFound, OperationFailed
from .accounts import OwnerIdentity


class Forbidden(OperationFailed):
    """The booking exists but belongs to another owner's page (the console answers 403)."""


def owner_pages(owner: OwnerIdentity):
    """A subquery of the page slugs the owner may see (None for a site admin: all)."""
    if owner.site_admin:
        return None
    return select(BookingPage.slug).where(BookingPage.owner_id == owner.id)


def may_see(db: Db, owner: OwnerIdentity, booking: Booking) -> bool:
    if owner.site_admin:
        return True
    if booking.page_slug is None:
        return False
    page = db.get(BookingPage, booking.page_slug)
    return page is not None and page.owner_id == owner.id


def booking_for(db: Db, owner: OwnerIdentity, booking_id: str) -> Booking:
    """The booking when the owner may see it. Raises NotFound (`unknown_booking`) or Forbidden
    (`not_your_booking`): an owner guessing another owner's booking id learns only that it is
    not theirs."""
    booking = db.get(Booking, booking_id) if isinstance(booking_id, str) and len(booking_id) <= 40 else None
    if booking is None:
        raise NotFound("unknown_booking", f"there is no booking {booking_id!r}")
    if not may_see(db, owner, booking):
        raise Forbidden("not_your_booking", "this booking belongs to a booking page of another owner")
    return booking


@dataclass(frozen=True)
class PageChoice:
    slug: str
    name: str
    event_types: list[tuple[int, str]] = field(default_factory=list)


def page_choices(db: Db, owner: OwnerIdentity) -> list[PageChoice]:
    """The owner's pages with their event types, for the stream's filters."""
    query = select(BookingPage).order_by(BookingPage.name, BookingPage.slug)
    if not owner.site_admin:
        query = query.where(BookingPage.owner_id == owner.id)
    pages = list(db.execute(query).scalars())
    types: dict[str, list[tuple[int, str]]] = {p.slug: [] for p in pages}
    if pages:
        rows = db.execute(select(EventType.page_slug, EventType.id, EventType.name, EventType.slug)
                          .where(EventType.page_slug.in_(list(types))).order_by(EventType.name, EventType.id))
        for page_slug, et_id, name, slug in rows:
            if slug:  # the page's own default offering ("" slug) is the page itself
                types[page_slug].append((et_id, name))
    return [PageChoice(p.slug, p.name, types[p.slug]) for p in pages]
