"""Stripe's webhook events in: what Stripe knows before we ask (refunds made in its dashboard,
failed refunds, disputes, authorizations that expired).

`handle_event` takes an event already verified by the caller (`POST /webhooks/stripe` checks
the signature with `stripe.Webhook.construct_event`) and handles it once: the `stripe_events`
row that dedupes it is written in the same transaction as its effects, so a redelivered event
changes nothing and a failed one is handled again when Stripe retries it. Nothing here calls
Stripe: everything needed is in the event.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from models import Booking, LedgerEntry, Payment, StripeEvent

from .booking.views import booking_view
from .errors import InvalidInput, OperationFailed
from .currency import from_stripe
from .money import format_amount
from .notifications.outbox import queue_emails

log = logging.getLogger("sessionpack.stripe_events")

HANDLED = ("charge.refunded", "refund.created", "refund.updated", "refund.failed", "charge.refund.updated",
           "charge.dispute.created", "payment_intent.canceled")


def _obj(event: dict) -> dict:
    data = event.get("data") or {}
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise InvalidInput("stripe_event_invalid", "the event has no data.object")
    return obj


def _booking_of_intent(db, intent_id: str | None) -> Booking | None:
    """The booking whose package PaymentIntent (or one of whose fee intents) this is."""
    if not intent_id:
        return None
    booking_id = db.execute(select(Payment.booking_id).where(Payment.intent_id == intent_id)).scalar()
    if booking_id is None:
        booking_id = db.execute(select(LedgerEntry.booking_id).where(
            LedgerEntry.kind.in_(("capture", "fee")), LedgerEntry.stripe_object_id == intent_id)).scalar()
    return db.get(Booking, booking_id) if booking_id else None


def handle_event(c, event: dict[str, Any]) -> dict[str, Any]:
    """Handle one verified Stripe event once. Returns {"event", "type", "outcome", "booking_id"}."""
    event_id, kind = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(kind, str):
        raise InvalidInput("stripe_event_invalid", "the event has no id or type")
    with c.uow() as uow:
        if uow.db.get(StripeEvent, event_id) is not None:
            return {"event": event_id, "type": kind, "outcome": "duplicate", "booking_id": None}
        handler = _HANDLERS.get(kind)
        booking_id, outcome = handler(c, uow, _obj(event)) if handler else (None, "ignored")
        uow.db.add(StripeEvent(id=event_id, type=kind, booking_id=booking_id, outcome=outcome,
                               received_at=c.clock()))
        try:
            uow.commit()
        except IntegrityError:
            # The same event handled concurrently (Stripe may deliver twice at once): theirs stands.
            return {"event": event_id, "type": kind, "outcome": "duplicate", "booking_id": booking_id}
    log.info("stripe event %s %s: %s (%s)", kind, event_id, outcome, booking_id)
    return {"event": event_id, "type": kind, "outcome": outcome, "booking_id": booking_id}


# -- refunds ----------------------------------------------------------------------------------------


def _record_outside_refund(c, uow, booking: Booking, refund: dict) -> bool:
    """A succeeded refund Stripe has that our ledger does not: recorded as made outside the
    service. Returns whether it was new."""
    refund_id = refund.get("id")
    db = uow.db
    ours = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "refund", or_(
        LedgerEntry.stripe_object_id == refund_id, LedgerEntry.idempotency_key == f"stripe-{refund_id}"))).scalar()
    if ours is not None:
        return False
    # A refund of ours still on its way (pending, no Stripe id yet) with the same key: the refund
    # task records it; recording it here too would count it twice.
    key = (refund.get("metadata") or {}).get("idempotency_key") if isinstance(refund.get("metadata"), dict) else None
    if key and db.execute(select(LedgerEntry.id).where(LedgerEntry.idempotency_key == key)).scalar():
        return False
    amount = from_stripe(int(refund.get("amount") or 0), refund.get("currency") or booking.currency)
    db.add(LedgerEntry(booking_id=booking.id, kind="refund", amount_cents=amount, currency=booking.currency,
                       status="succeeded", stripe_object_id=refund_id, idempotency_key=f"stripe-{refund_id}",
                       target_id=refund.get("payment_intent"), actor="stripe",
                       reason=refund.get("reason") or "refunded outside sessionpack (Stripe dashboard)",
                       created_at=c.clock(), updated_at=c.clock()))
    uow.record("refund.succeeded", booking_id=booking.id, actor="stripe",
               amount=format_amount(amount, booking.currency), currency=booking.currency, refund=refund_id,
               stripe_status=refund.get("status"), outside=True)
    return True


def _refund_failed(c, uow, booking: Booking, refund: dict) -> str:
    """A refund Stripe could not return to the card: the ledger stops counting it, the stream
    records it and the owner is told (the customer has not got that money back)."""
    refund_id = refund.get("id")
    db = uow.db
    ours = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "refund",
                                                LedgerEntry.stripe_object_id == refund_id)).scalar()
    if ours is not None and ours.status == "failed":
        return "already_recorded"
    if ours is not None:
        ours.status = "failed"
    amount = from_stripe(int(refund.get("amount") or 0), refund.get("currency") or booking.currency)
    reason = refund.get("failure_reason") or "unknown"
    uow.record("refund.failed", booking_id=booking.id, session_id=ours.session_id if ours else None, actor="stripe",
               amount=format_amount(amount, booking.currency), currency=booking.currency, refund=refund_id,
               code="stripe_refund_failed", message=f"Stripe could not refund {refund_id}: {reason}")
    _tell_owner(c, uow, booking, "refund_failed", refund_id,
                title="A refund failed",
                text=(f"Stripe could not return the refund of {format_amount(amount, booking.currency)} "
                      f"{booking.currency} ({refund_id}) to {booking.customer_name}'s card (reason: {reason}). "
                      f"The customer has not received that money; refund them another way or try again."))
    return "refund_failed"


def _on_charge_refunded(c, uow, charge: dict) -> tuple[str | None, str]:
    booking = _booking_of_intent(uow.db, charge.get("payment_intent"))
    if booking is None:
        return None, "unknown_payment"
    refunds = (charge.get("refunds") or {}).get("data") or []
    new = 0
    for refund in refunds:
        if not isinstance(refund, dict):
            continue
        refund.setdefault("payment_intent", charge.get("payment_intent"))
        if refund.get("status") == "succeeded":
            new += _record_outside_refund(c, uow, booking, refund)
        elif refund.get("status") == "failed":
            _refund_failed(c, uow, booking, refund)
    return booking.id, f"recorded_{new}_refunds" if new else "nothing_new"


def _on_refund(c, uow, refund: dict) -> tuple[str | None, str]:
    booking = _booking_of_intent(uow.db, refund.get("payment_intent"))
    if booking is None:
        return None, "unknown_payment"
    status = refund.get("status")
    if status == "succeeded":
        return booking.id, "recorded_refund" if _record_outside_refund(c, uow, booking, refund) else "nothing_new"
    if status in ("failed", "canceled"):
        return booking.id, _refund_failed(c, uow, booking, refund)
    return booking.id, f"refund_{status}"


# -- disputes and expired authorizations ---------------------------------------------------------------


def _on_dispute(c, uow, dispute: dict) -> tuple[str | None, str]:
    booking = _booking_of_intent(uow.db, dispute.get("payment_intent"))
    if booking is None:
        return None, "unknown_payment"
    amount = from_stripe(int(dispute.get("amount") or 0), dispute.get("currency") or booking.currency)
    reason = dispute.get("reason") or "unspecified"
    uow.record("payment.disputed", booking_id=booking.id, actor="stripe", dispute=dispute.get("id"),
               amount=format_amount(amount, booking.currency), currency=booking.currency, reason=reason,
               status=dispute.get("status"))
    _tell_owner(c, uow, booking, "dispute", dispute.get("id"),
                title="A payment is disputed",
                text=(f"{booking.customer_name} disputed {format_amount(amount, booking.currency)} {booking.currency} "
                      f"with their bank (reason: {reason}; dispute {dispute.get('id')}). Answer it in the Stripe "
                      f"dashboard before its deadline, with the booking's details as evidence."))
    return booking.id, "dispute_recorded"


def _on_intent_canceled(c, uow, intent: dict) -> tuple[str | None, str]:
    """An authorization that expired (Stripe cancels uncaptured intents after 7 days) fails a
    booking still in its workflow cleanly: compensations run, the slots are released, the
    customer is told. A booking past capture, or failed already, is left alone."""
    from .booking.saga import TASK_FOR_STEP, mark_step

    db = uow.db
    booking_id = db.execute(select(Payment.booking_id).where(Payment.intent_id == intent.get("id"))).scalar()
    booking = db.get(Booking, booking_id) if booking_id else None
    if booking is None:
        return None, "unknown_payment"
    if booking.status != "pending" or booking.saga_step == "compensate":
        return booking.id, f"left_{booking.status}"
    why = intent.get("cancellation_reason") or "canceled"
    error = OperationFailed("authorization_expired",
                            f"the card authorization {intent.get('id')} was cancelled by Stripe ({why}) before it "
                            f"was captured; nothing was charged")
    step = "authorize"
    booking.failure = {"step": step, "code": error.code, "message": error.message}
    booking.saga_step = "compensate"
    mark_step(db, booking.id, step, "failed", booking.failure)
    uow.record(f"{step}.failed", booking_id=booking.id, actor="stripe", code=error.code, message=error.message)
    uow.enqueue(TASK_FOR_STEP["compensate"], booking_id=booking.id)
    return booking.id, "booking_failing"


def _tell_owner(c, uow, booking: Booking, what: str, ref: str | None, *, title: str, text: str) -> None:
    from .notifications import compose

    uow.db.flush()
    view = booking_view(uow.db, booking, c.settings)
    queue_emails(uow, compose.payment_alert(view, what, ref or "", title=title, text=text), booking_id=booking.id)


_HANDLERS = {
    "charge.refunded": _on_charge_refunded,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "charge.refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.dispute.created": _on_dispute,
    "payment_intent.canceled": _on_intent_canceled,
}
