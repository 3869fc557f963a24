"""What a session's meeting is asked to be, and the provider a booking's meetings are made with.

One definition for the saga's conferencing step, its compensation, a reschedule's move and the
orphan sweep (which matches meetings by this request: GoTo by its subject)."""
from __future__ import annotations

from models import Booking, Session

from ..errors import PermanentError
from .base import ConferencingProvider, MeetingRequest


def meeting_request(booking: Booking, session: Session) -> MeetingRequest:
    """What the provider is asked to make for a session (the orphan sweep matches on it too)."""
    terms = booking.terms
    return MeetingRequest(
        session_id=session.id,
        topic=f"{terms.get('event_name', 'Session')} — session {session.number} of {len(booking.sessions)} with {booking.customer_name}"[:200],
        start=session.start_at, duration_minutes=int(terms.get("duration_minutes", 60)),
        timezone=terms.get("owner_timezone", "UTC"), host_email=terms.get("owner_email"),
    )


def provider_for(c, name: str) -> ConferencingProvider:
    """The container's provider of that name, or PermanentError `conferencing_unavailable`."""
    provider = c.conferencing.get(name)
    if provider is None:
        raise PermanentError("conferencing_unavailable",
                             f"conferencing provider {name!r} is not configured on this service; set its credentials "
                             f"(see the README's environment table) or choose another provider")
    return provider
