"""Money after booking: what is refundable, refunds (planned in a transaction, sent after it),
and reschedule fees. Every movement is a ledger row written `pending` before Stripe is called,
with an idempotency key derived from its change, and made `succeeded` with the Stripe object's
id afterwards. Because the Stripe test peer ignores idempotency keys, a movement that may have
reached Stripe before a crash is first looked for (`find_refund`, `find_charge`) by its key.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Booking, LedgerEntry, Payment
from models.messaging import change_index

from ..errors import OperationFailed, PermanentError
from ..money import display_amount, format_amount
from . import policy
from .changes import SEND_REFUNDS, _keys_of_change, refund_key

log = logging.getLogger("sessionpack.lifecycle.ledger")


@dataclass(frozen=True)
class MoneyPosition:
    """A booking's money from the ledger, in cents. `intents` lists each PaymentIntent that took
    money with the amount it took: the package's capture first, then each fee as charged."""

    captured: int = 0
    fees: int = 0
    refunded: int = 0
    pending_refunds: int = 0
    intents: list[tuple[str, int]] = field(default_factory=list)

    @property
    def given_back(self) -> int:
        return self.refunded + self.pending_refunds

    @property
    def refundable(self) -> int:
        return policy.refundable(self.captured, self.fees, self.refunded, self.pending_refunds)


def money_position(db: Db, booking_id: str) -> MoneyPosition:
    """Read from the ledger; refunds still on their way count as given back already."""
    totals = {"capture": 0, "fee": 0, "refund": 0, "pending_refund": 0}
    intents = []
    rows = db.execute(select(LedgerEntry).where(LedgerEntry.booking_id == booking_id).order_by(LedgerEntry.id)).scalars()
    for row in rows:
        if row.kind == "refund" and row.status == "pending":
            totals["pending_refund"] += row.amount_cents
        elif row.status == "succeeded":
            totals[row.kind] += row.amount_cents
            if row.kind in ("capture", "fee"):
                intents.append((row.stripe_object_id, row.amount_cents))
    return MoneyPosition(totals["capture"], totals["fee"], totals["refund"], totals["pending_refund"], intents)


def entry_by_key(db: Db, key: str) -> LedgerEntry | None:
    return db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).scalar_one_or_none()


# -- refunds ------------------------------------------------------------------------------------


def check_refundable(booking: Booking, position: MoneyPosition, amount: int) -> None:
    """Refuse a refund of more than is still refundable (Stripe's test peer would not)."""
    if amount > position.refundable:
        cur = booking.currency
        raise OperationFailed(
            "refund_exceeds_refundable",
            f"a refund of {display_amount(amount, cur)} is more than the {display_amount(position.refundable, cur)} "
            f"still refundable on booking {booking.id} (paid {format_amount(position.captured + position.fees, cur)}, "
            f"refunded or being refunded {format_amount(position.given_back, cur)}); nothing was refunded",
        )


def plan_refund(uow, booking: Booking, amount: int, change_key: str, *, actor: str, reason: str | None,
                session_id: str | None = None, notify: bool = False) -> list[dict]:
    """In the deciding transaction: the pending ledger row(s) of a refund and the activity entry,
    and the task that sends it after commit. Returns the parts as [{"key", "intent_id"}].
    `notify` (a manual refund): the customer is emailed once the refund has reached Stripe; it is
    recorded on the change's `refund.requested` entry, where `send_refunds` reads it (a cancel's
    refund is told in the cancellation email, a fee's in the refusal)."""
    if amount <= 0:
        return []
    position = money_position(uow.db, booking.id)
    check_refundable(booking, position, amount)
    parts = []
    for number, (intent_id, cents) in enumerate(policy.split_refund(position.intents, position.given_back, amount), 1):
        key = refund_key(booking.id, change_key, number)
        uow.db.add(LedgerEntry(booking_id=booking.id, session_id=session_id, kind="refund", amount_cents=cents,
                               currency=booking.currency, status="pending", idempotency_key=key,
                               actor=actor, reason=reason, target_id=intent_id))
        parts.append({"key": key, "intent_id": intent_id})
    uow.record("refund.requested", booking_id=booking.id, session_id=session_id, actor=actor,
               amount=format_amount(amount, booking.currency), currency=booking.currency, reason=reason,
               change=change_key, **({"notify_customer": True} if notify else {}))
    return parts


def _finish_refund(c, key: str, movement=None, error: PermanentError | None = None) -> None:
    with c.uow() as uow:
        entry = entry_by_key(uow.db, key)
        if entry is None or entry.status != "pending":
            return  # recorded meanwhile by a concurrent run of the same task
        amount = format_amount(entry.amount_cents, entry.currency)
        if error is not None:
            entry.status = "failed"
            uow.record("refund.failed", booking_id=entry.booking_id, session_id=entry.session_id,
                       amount=amount, currency=entry.currency, code=error.code, message=error.message)
        else:
            entry.status, entry.stripe_object_id = "succeeded", movement.object_id
            uow.record("refund.succeeded", booking_id=entry.booking_id, session_id=entry.session_id,
                       amount=amount, currency=entry.currency, refund=movement.object_id,
                       stripe_status=movement.status)
        uow.commit()


def send_refund(c, key: str, intent_id: str | None = None, *, booking_id: str | None = None) -> str:
    """Send one pending refund to Stripe and record it; returns the ledger row's final status.

    Safe to run any number of times: a row that is no longer pending is left alone, and a refund
    that reached Stripe before a crash is found by its key instead of being sent again. The amount
    and the PaymentIntent come from the ledger row, never from the caller (`intent_id` is ignored:
    a forged task message cannot point a refund at another payment); with `booking_id`, a row of
    another booking is left alone ("missing").
    """
    with c.read() as db:
        entry = entry_by_key(db, key)
        if entry is None or entry.kind != "refund" or (booking_id is not None and entry.booking_id != booking_id):
            return "missing"
        if entry.status != "pending":
            return entry.status
        amount, intent_id = entry.amount_cents, entry.target_id
        if not intent_id:
            return "missing"
    try:
        movement = c.payments.find_refund(intent_id, key) or c.payments.refund(
            intent_id, amount_cents=amount, idempotency_key=key)
    except PermanentError as exc:
        log.error("refund %s refused by Stripe: %s", key, exc.message)
        _finish_refund(c, key, error=exc)
        raise
    _finish_refund(c, key, movement)
    return "succeeded"


def send_refunds(c, booking_id: str, refunds: list[dict], notify: object = None, change_key: object = None,
                 reason: object = None) -> None:
    """The task body: send every part of a change's refund, then (manual refunds) tell the
    customer once all of it has reached Stripe. A part Stripe refuses is marked failed and the
    other parts still go; the first refusal is raised at the end.

    The message names ledger rows only (`refunds`: their keys; amounts and intents come from the
    rows). Whether the customer is told, under which change and why is read from the change's
    record (`plan_refund`), never from the message: `notify`, `change_key` and `reason` are
    accepted from messages queued by an older version and ignored."""
    refused = None
    refunds = [part for part in refunds if isinstance(part, dict) and isinstance(part.get("key"), str)]
    for part in refunds:
        try:
            send_refund(c, part["key"], booking_id=booking_id)
        except PermanentError as exc:
            refused = refused or exc
    if refused is not None:
        raise refused
    change = _notified_change(c, booking_id, [part["key"] for part in refunds])
    if change is not None:
        _notify_refund(c, booking_id, change)


def _notified_change(c, booking_id: str, keys: list[str]) -> str | None:
    """The change whose refund rows these are, when its record asks for the customer to be told."""
    from models import Activity

    if not keys:
        return None
    with c.read() as db:
        requested = db.execute(select(Activity.details).where(
            Activity.booking_id == booking_id, Activity.action == "refund.requested")).scalars().all()
    # The entry holds a change key over 80 characters as its digest (models.messaging.change_index;
    # a refund_id of 78-80 makes one), so the change is named by the keys and found by its index.
    base = refund_key(booking_id, "")
    rest = keys[0][len(base):] if keys[0].startswith(base) else ""
    candidates = [rest, *([rest.rsplit(".", 1)[0]] if rest.rsplit(".", 1)[-1].isdigit() else [])]
    for details in requested:
        recorded = (details or {}).get("change")
        if (details or {}).get("notify_customer") is not True or not isinstance(recorded, str):
            continue
        for change in candidates:
            if change and change_index(change) == recorded and all(_keys_of_change(booking_id, change, k) for k in keys):
                return change
    return None


def _notify_refund(c, booking_id: str, change_key: str) -> None:
    from ..booking.views import booking_view
    from ..notifications import compose
    from ..notifications.outbox import queue_emails

    with c.uow() as uow:
        # Every refund row of the change, from the ledger (not the message's list).
        keys = [k for k in uow.db.execute(select(LedgerEntry.idempotency_key).where(
            LedgerEntry.booking_id == booking_id, LedgerEntry.kind == "refund")).scalars()
            if _keys_of_change(booking_id, change_key, k)]
        entries = [entry_by_key(uow.db, key) for key in keys]
        if not entries or any(e is None or e.status != "succeeded" or e.booking_id != booking_id for e in entries):
            return
        reason = entries[0].reason  # the reason the change was made with, not the message's
        booking = uow.db.get(Booking, booking_id)
        view = booking_view(uow.db, booking, c.settings)
        # The message id comes from the change key: a second run queues nothing new.
        queue_emails(uow, compose.refund_issued(view, sum(e.amount_cents for e in entries), change_key, reason=reason),
                     booking_id=booking_id)
        uow.commit()


def resend_stale_refunds(c, older_than: timedelta) -> int:
    """The sweep: send again every refund still pending after `older_than` (its task gave up or
    was lost). `send_refund` finds one that reached Stripe, so nothing is refunded twice; a
    manual refund's customer is then told, as its task would have (once per change)."""
    cutoff = c.clock() - older_than
    with c.read() as db:
        stale = db.execute(select(LedgerEntry.idempotency_key, LedgerEntry.target_id, LedgerEntry.booking_id).where(
            LedgerEntry.kind == "refund", LedgerEntry.status == "pending", LedgerEntry.target_id.is_not(None),
            LedgerEntry.updated_at < cutoff)).all()
    for key, intent_id, booking_id in stale:
        try:
            send_refund(c, key, intent_id)
        except PermanentError:
            continue  # recorded as failed by send_refund
        change = _notified_change(c, booking_id, [key])
        if change is not None:
            _notify_refund(c, booking_id, change)
    return len(stale)


def enqueue_refund(uow, booking_id: str, parts: list[dict]) -> None:
    """Ask for the refund parts to be sent once the deciding transaction has committed (the
    message names the rows; everything else is read from the ledger and the change's record)."""
    if parts:
        uow.enqueue(SEND_REFUNDS, booking_id=booking_id, refunds=parts)


# -- fees ---------------------------------------------------------------------------------------


def saved_card(db: Db, booking_id: str) -> Payment:
    """The booking's payment, whose customer and card are charged for fees."""
    payment = db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
    if payment is None or not payment.stripe_customer_id:
        raise OperationFailed("no_saved_card", f"booking {booking_id} has no saved card to charge a fee to; "
                                               "ask the booking page's administrator to reschedule")
    return payment


def hold_fee(uow, booking: Booking, session_id: str, amount: int, key: str, *, actor: str) -> tuple[LedgerEntry, bool]:
    """The pending ledger row of a fee, made now or found from an earlier run (then True)."""
    entry = entry_by_key(uow.db, key)
    if entry is not None:
        return entry, True
    saved_card(uow.db, booking.id)  # no card, no fee row
    entry = LedgerEntry(booking_id=booking.id, session_id=session_id, kind="fee", amount_cents=amount,
                        currency=booking.currency, status="pending", idempotency_key=key, actor=actor)
    uow.db.add(entry)
    return entry, False


def charge_fee(c, booking_id: str, key: str, *, retried: bool) -> None:
    """Charge a held fee off-session to the saved card and record it. A decline marks the row
    failed and raises OperationFailed `fee_declined`; a fee already charged is left alone."""
    with c.read() as db:
        entry = entry_by_key(db, key)
        if entry.status == "succeeded":
            return
        payment = saved_card(db, booking_id)
        amount, currency = entry.amount_cents, entry.currency
        customer, method = payment.stripe_customer_id, payment.payment_method
    try:
        found = c.payments.find_charge(booking_id, key) if retried else None
        if found is None or found.status != "succeeded":
            found = c.payments.charge_off_session(amount_cents=amount, currency=currency, customer_id=customer,
                                                  payment_method=method, booking_id=booking_id, idempotency_key=key)
    except PermanentError as exc:
        _finish_fee(c, key, error=exc)
        raise OperationFailed(
            "fee_declined",
            f"the reschedule fee of {display_amount(amount, currency)} could not be charged to the saved card: "
            f"{exc.message}. Nothing was changed; update the card or ask the administrator",
        ) from exc
    _finish_fee(c, key, found)


def _finish_fee(c, key: str, movement=None, error: PermanentError | None = None) -> None:
    with c.uow() as uow:
        entry = entry_by_key(uow.db, key)
        if entry.status != "pending":
            return
        amount = format_amount(entry.amount_cents, entry.currency)
        if error is not None:
            entry.status = "failed"
            uow.record("fee.declined", booking_id=entry.booking_id, session_id=entry.session_id, actor=entry.actor,
                       amount=amount, currency=entry.currency, code=error.code, message=error.message)
        else:
            entry.status, entry.stripe_object_id = "succeeded", movement.object_id
            uow.record("fee.charged", booking_id=entry.booking_id, session_id=entry.session_id, actor=entry.actor,
                       amount=amount, currency=entry.currency, intent=movement.object_id)
        uow.commit()


def settle_stale_fee(c, booking_id: str, key: str) -> None:
    """A fee left pending by a change that ended while charging it (its task gave up or was lost
    between Stripe's answer and the ledger): what Stripe has decides. A charge found is recorded
    `succeeded` (for the caller to refund), anything else `failed`. Raises TransientError while
    Stripe cannot be asked. Only for a fee no run of its change can still be charging."""
    found = c.payments.find_charge(booking_id, key)
    if found is not None and found.status == "succeeded":
        _finish_fee(c, key, found)
    else:
        _finish_fee(c, key, error=PermanentError(
            "fee_not_charged", "the change ended before its fee was charged; Stripe has no charge for it"))


FEE_NOT_REFUNDED = "fee.not_refunded"


def plan_fee_refund(uow, booking_id: str, key: str, change_key: str, *, reason: str) -> int:
    """In the deciding transaction: plan giving back a change's charged fee, once per change (the
    change's refund key), at most what is still refundable. Returns the cents planned."""
    fee = entry_by_key(uow.db, key)
    if fee is None or fee.status != "succeeded" or entry_by_key(uow.db, refund_key(booking_id, change_key)):
        return 0
    booking = uow.db.get(Booking, booking_id)
    amount = min(fee.amount_cents, money_position(uow.db, booking_id).refundable)
    if amount <= 0:
        # The booking was refunded in full meanwhile. Said once in the stream, so the orphaned-fee
        # sweep counts the change as settled instead of coming back to it every tick.
        uow.record(FEE_NOT_REFUNDED, booking_id=booking_id, session_id=fee.session_id, change=change_key,
                   reason="nothing of the booking is left to refund")
        return 0
    parts = plan_refund(uow, booking, amount, change_key, actor="system", reason=reason, session_id=fee.session_id)
    enqueue_refund(uow, booking_id, parts)
    return amount
