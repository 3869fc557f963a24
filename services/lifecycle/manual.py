"""Manual refunds by the booking page administrator: any amount up to what is still refundable."""
from __future__ import annotations

from models import Booking

from ..errors import InvalidInput, NotFound
from ..money import parse_amount
from .access import actor_of, check_booking_id
from .changes import begin_change, clean_reason, recording_refusals
from .ledger import check_refundable, enqueue_refund, money_position, plan_refund


def check_refund(db, booking_id: str, amount_text, admin: bool) -> tuple[Booking, int]:
    """The booking and the amount in cents, when the administrator may refund it now."""
    if not admin:
        raise InvalidInput("admin_required", "manual refunds are made by the booking page's administrator: add --admin")
    booking = db.get(Booking, check_booking_id(booking_id))
    if booking is None:
        raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id (`sessionpack show`)")
    amount = parse_amount(amount_text, booking.currency, field="--amount")
    if amount <= 0:
        raise InvalidInput("invalid_amount", f"--amount {amount_text!r} must be more than zero, like 12.50")
    check_refundable(booking, money_position(db, booking.id), amount)
    return booking, amount


def preview_refund(c, booking_id: str, amount_text, admin: bool = True, reason: str | None = None) -> dict:
    """Check a manual refund without moving money (the CLI, before it enqueues the task)."""
    clean_reason(reason)
    with c.read() as db:
        booking, amount = check_refund(db, booking_id, amount_text, admin)
        return {"booking_id": booking.id, "amount_cents": amount, "currency": booking.currency}


def refund_booking(c, booking_id: str, amount_text, admin: bool = True, reason: str | None = None, *,
                   change_key: str, actor: str | None = None) -> dict:
    """Refund `amount_text` (e.g. "12.50") of a booking. More than is refundable (captured + fees
    - refunded, counting refunds still on their way) is refused with `refund_exceeds_refundable`
    and nothing moves; zero, negative or malformed amounts are InvalidInput. The customer is
    emailed once the refund has reached Stripe. Returns {"booking_id", "amount_cents", ...}."""
    with recording_refusals(c, "refund", change_key, actor=actor_of(admin, actor), booking_id=booking_id):
        reason = clean_reason(reason)
        with c.uow() as uow:
            if isinstance(booking_id, str) and begin_change(uow, change_key, booking_id=booking_id):
                return {"booking_id": booking_id, "change_key": change_key, "replayed": True}
            booking, amount = check_refund(uow.db, booking_id, amount_text, admin)
            parts = plan_refund(uow, booking, amount, change_key, actor=actor_of(admin, actor), reason=reason,
                                notify=True)
            enqueue_refund(uow, booking.id, parts)
            uow.commit()
            return {"booking_id": booking.id, "amount_cents": amount, "change_key": change_key, "replayed": False}
