"""Confirming at once: a booking whose remaining steps make no call out is held, given its
meetings and confirmed in the hold's own transaction, one task instead of three (issue 20).

Why this keeps every guarantee of the saga. The steps after the hold exist to be retried and
compensated one by one because each may act outside the database (a provider's API, Stripe).
When none does (no price, and no meetings or a provider whose `remote` is False: builtin, Jitsi),
there is nothing outside to undo, so the steps can share one transaction: it commits the booking
confirmed with its meetings, its saga log (hold, conferencing, capture, notify, reminders: one
upsert), the same activity entries as before, the emails and reminders, or it commits nothing.
A redelivered request finds its intake row and does nothing (services/booking/intake.py). When
the merged part fails, the caller rolls everything back and holds the booking the ordinary way,
so the failing step runs again as its own task, with its retries and compensation.
"""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from models import Booking
from .confirm import confirm_within
from .steps import make_local_meetings

NO_MEETINGS = "none"


class NotAtOnce(Exception):
    """The merged part failed; its cause is the error. The transaction must be rolled back."""


def local_provider(c, et):
    """The conferencing provider when the event type's booking can be confirmed at once: False
    when it cannot (a price, manual mode, a provider that calls out or is not configured), None
    when it needs no meetings."""
    if et.price_cents or et.booking_mode == "manual":
        return False
    if et.conferencing_provider == NO_MEETINGS:
        return None
    provider = c.conferencing.get(et.conferencing_provider)
    if provider is None or provider.remote:
        return False
    return provider


def confirm_at_hold(c, uow, booking: Booking, provider) -> None:
    """Meetings, then the pivot, in the hold's transaction (not committed here). Any error but
    the hold's own IntegrityError (a slot taken meanwhile) is raised as `NotAtOnce`."""
    try:
        if provider is not None:
            make_local_meetings(uow, booking, provider)
        done = ("hold", "conferencing") if provider is not None else ("hold",)
        confirm_within(c, uow, booking, None, done_before=done)
    except IntegrityError:
        raise
    except Exception as exc:  # noqa: BLE001 - the caller falls back to the step-by-step saga
        raise NotAtOnce(f"{type(exc).__name__}: {exc}") from exc
