"""The `BookingView` of a booking, read from the database: what emails, calendar files and the
owner's calendar are rendered from (with the customer's and the owner's links, and the money so far)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as Db

from models import Booking, LedgerEntry, Meeting, Owner

from .. import tokens
from .views import BookingView, MeetingView, PolicyView, SessionView


def manage_url(settings, session_id: str) -> str:
    """The customer's cancel/reschedule link of one session (carries the manage token)."""
    return tokens.manage_url(settings.public_base_url, settings.secret_key, session_id)


def conferencing_info_url(settings, session_id: str) -> str:
    """The read-only meeting page of one session (carries the meeting-info token, never the manage one)."""
    return tokens.meeting_url(settings.public_base_url, settings.secret_key, session_id)


def owner_url(settings, booking_id: str) -> str:
    """The owner console's page of the booking: what the owner's emails and calendar link to."""
    return tokens.owner_booking_url(settings.public_base_url, booking_id)


def ledger_totals(db: Db, booking_id: str) -> dict[str, int]:
    """Succeeded money movements by kind, in cents: {'capture': .., 'fee': .., 'refund': ..}."""
    rows = db.execute(
        select(LedgerEntry.kind, func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.booking_id == booking_id, LedgerEntry.status == "succeeded")
        .group_by(LedgerEntry.kind)
    )
    totals = {"capture": 0, "fee": 0, "refund": 0}
    totals.update({kind: int(amount) for kind, amount in rows})
    return totals


def active_meetings(db: Db, booking: Booking) -> dict[str, Meeting]:
    """The live meeting of each of the booking's sessions, by session id."""
    ids = [s.id for s in booking.sessions]
    if not ids:
        return {}
    rows = db.execute(select(Meeting).where(Meeting.session_id.in_(ids), Meeting.status == "active")).scalars()
    return {m.session_id: m for m in rows}


def policy_view(terms: dict[str, Any]) -> PolicyView:
    cancel = terms.get("policies", {}).get("cancel", {})
    reschedule = terms.get("policies", {}).get("reschedule", {})
    return PolicyView(
        cancel_allowed=bool(cancel.get("allowed", True)),
        cancel_min_notice_hours=float(cancel.get("min_notice_hours", 0)),
        refund_percent=float(cancel.get("refund_percent", 100)),
        reschedule_allowed=bool(reschedule.get("allowed", True)),
        reschedule_min_notice_hours=float(reschedule.get("min_notice_hours", 0)),
        fee_percent=float(reschedule.get("fee_percent", 0)),
    )


def booking_view(db: Db, booking: Booking, settings) -> BookingView:
    """The rendering view of a booking, with every session and its live meeting."""
    meetings = active_meetings(db, booking)
    totals = ledger_totals(db, booking.id)
    terms = booking.terms or {}
    owner = db.get(Owner, booking.owner_id) if booking.owner_id else None
    sessions = []
    console = owner_url(settings, booking.id)
    for s in booking.sessions:
        m = meetings.get(s.id)
        sessions.append(SessionView(
            id=s.id, number=s.number, status=s.status, start=s.start_at, end=s.end_at,
            relative_cost_cents=s.relative_cost_cents, uid=s.uid, sequence=s.sequence,
            manage_url=manage_url(settings, s.id), conferencing_info_url=conferencing_info_url(settings, s.id),
            owner_url=console,
            meeting=MeetingView(provider=m.provider, join_url=m.join_url, meeting_id=m.external_id,
                                password=m.password, dial_in=m.dial_in, host_url=m.host_url) if m else None,
        ))
    return BookingView(
        id=booking.id, status=booking.status,
        event_name=terms.get("event_name", ""), page_name=terms.get("page_name", ""),
        duration_minutes=int(terms.get("duration_minutes", 0)),
        sessions_per_booking=len(booking.sessions) or int(terms.get("sessions_per_booking", 0)),
        customer_name=booking.customer_name, customer_email=booking.customer_email,
        customer_timezone=booking.customer_timezone,
        owner_name=owner.name if owner else terms.get("owner_name", ""),
        owner_email=owner.email if owner else terms.get("owner_email", ""),
        owner_timezone=owner.timezone if owner else terms.get("owner_timezone", "UTC"),
        currency=booking.currency, price_cents=booking.price_cents,
        paid_cents=totals["capture"], refunded_cents=totals["refund"], fees_cents=totals["fee"],
        policies=policy_view(terms), sessions=sessions, failure=booking.failure,
    )
