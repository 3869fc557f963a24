"""What a booking looks like from outside: the contract's booking object (`show`), its activity
entries, and how a request that never got confirmed ended."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Activity, Booking
from ..availability import to_utc_iso
from ..money import format_amount
from .ids import public_request_id
# The rendering view lives with notifications (calendar and reminders read it too); its names
# stay importable from here for the lifecycle, the CLI and the web process.
from ..notifications.booking_view import (active_meetings, booking_view, conferencing_info_url, ledger_totals,
                                          manage_url, owner_url, policy_view)

PUBLIC_SESSION_STATUS = {"held": "pending", "confirmed": "confirmed", "cancelled": "cancelled", "released": "cancelled"}


def activity_entry(a: Activity) -> dict[str, Any]:
    return {"at": to_utc_iso(a.at), "actor": a.actor, "action": a.action, "booking_id": a.booking_id,
            "session_id": a.session_id, "details": a.details or {}}


def booking_object(db: Db, booking: Booking, settings, *, for_owner: bool = False) -> dict[str, Any]:
    """The contract's booking object (`sessionpack show`, the API's booking read).

    `for_owner`: the object goes where the owner reads it (an outgoing webhook goes to an endpoint
    the owner configured on the booking page), and the owner never receives the customer's manage
    link: each session's `manage_url` is then null. `conferencing_info_url` stays (read-only)."""
    meetings = active_meetings(db, booking)
    totals = ledger_totals(db, booking.id)
    cur = booking.currency
    sessions = []
    for s in booking.sessions:
        m = meetings.get(s.id)
        sessions.append({
            "id": s.id, "number": s.number, "status": PUBLIC_SESSION_STATUS.get(s.status, s.status),
            "start": to_utc_iso(s.start_at), "end": to_utc_iso(s.end_at),
            "relative_cost": format_amount(s.relative_cost_cents, cur),
            "conferencing": ({"provider": m.provider, "meeting_id": m.external_id, "join_url": m.join_url,
                              "password": m.password} if m else None),
            "manage_url": None if for_owner else manage_url(settings, s.id), "conferencing_info_url": conferencing_info_url(settings, s.id),
        })
    activity = db.execute(
        select(Activity).where(Activity.booking_id == booking.id).order_by(Activity.id.desc())
    ).scalars()
    return {
        "id": booking.id, "request_id": public_request_id(booking.request_id), "status": booking.status,
        "failure": booking.failure, "booking_page": booking.page_slug,
        "event_type": booking.event_type_slug or None,
        "customer": {"name": booking.customer_name, "email": booking.customer_email,
                     "timezone": booking.customer_timezone},
        "price": format_amount(booking.price_cents, cur), "currency": cur,
        "paid": format_amount(totals["capture"], cur),
        "refunded": format_amount(totals["refund"], cur), "fees": format_amount(totals["fee"], cur),
        "sessions": sessions,
        "activity": [{k: v for k, v in activity_entry(a).items() if k != "booking_id"} for a in activity],
    }


def how_request_ended(booking: Booking) -> str:
    """' (the request was withdrawn)' and the like: how a request that never got confirmed ended,
    for an error's message; '' for any other booking."""
    failure = booking.failure or {}
    if failure.get("step") != "approval":
        return ""
    return {"withdrawn": " (the request was withdrawn)", "declined": " (the owner declined the request)",
            "approval_expired": " (the request expired before the owner decided)"}.get(failure.get("code"), "")


__all__ = ["PUBLIC_SESSION_STATUS", "activity_entry", "booking_object", "booking_view", "conferencing_info_url",
           "how_request_ended", "ledger_totals", "manage_url", "owner_url", "policy_view"]
