"""Reschedules that charged their fee but never moved their session, ended for good.

A reschedule charges its fee before it moves the session (see `reschedule`). When the move then
fails until the task's retries run out (the database or a peer down), or the task is lost, the
change is refused as `reschedule_failed` and the fee given back: by the task's give-up path
(`give_up_reschedule`) and, for whatever that missed, by beat's sweep (`refund_orphaned_fees`).
Both go through `abandon_reschedule`, which decides under the booking's lock, so a late run of
the same change is refused instead of moving the session after its fee came back.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Activity, LedgerEntry, Session
from models.money import CHARGED_FEE

from ..booking.views import booking_view
from ..errors import OperationFailed, ServiceError
from ..notifications import compose
from ..notifications.outbox import queue_emails
from ..tokens import verify_manage_token
from .access import booking_of, lock_booking
from .cancel import session_label
from .changes import change_of_fee, change_outcome, fee_key, record_refusal_in, refund_key
from .ledger import FEE_NOT_REFUNDED, entry_by_key, plan_fee_refund, settle_stale_fee

log = logging.getLogger("sessionpack.lifecycle.abandon")

FAILED = "reschedule_failed"
MAX_FEES_PER_TICK = 20  # each may ask Stripe; the rest wait for the next tick


def not_moved(session: Session) -> OperationFailed:
    return OperationFailed(
        FAILED, f"{session_label(session)} was not moved: the reschedule could not be completed because a service "
                "it needs stayed unavailable. The session keeps its time and any rescheduling fee is refunded; "
                "ask for the new time again later")


def abandon_reschedule(c, booking_id: str, change_key: str, *, session_id: str | None = None,
                       notify: bool | None = None, settle: bool = False) -> ServiceError | None:
    """End a reschedule that did not move its session: refuse it (`reschedule_failed`, unless it
    was refused already), refund its charged fee once (its refund key) and, when it was the
    customer's (`notify`; by default: a fee was charged to them), email them that the session
    keeps its time. Returns the refusal, or None when the change was applied after all.

    A fee still pending may have reached Stripe while its charge's answer was lost: with
    `settle` (the sweep, long after any run of the change could still be charging), Stripe's
    record decides; without it the fee is left to the sweep."""
    key = fee_key(booking_id, change_key)
    with c.uow() as uow:
        lock_booking(uow.db, booking_id)
        outcome = change_outcome(uow.db, booking_id, change_key)
        if outcome is not None and outcome.state == "applied":
            return None
        fee = entry_by_key(uow.db, key)
        session_id = session_id or (fee.session_id if fee else None)
        notify = (fee is not None and fee.actor == "customer") if notify is None else notify
        pending = fee is not None and fee.status == "pending"
        refusal = outcome.error if outcome is not None else not_moved(uow.db.get(Session, session_id))
        if outcome is None:
            record_refusal_in(uow, "reschedule", change_key, refusal, booking_id=booking_id, session_id=session_id)
            uow.commit()
    if pending:
        if not settle:
            return refusal
        settle_stale_fee(c, booking_id, key)
    with c.uow() as uow:
        booking = lock_booking(uow.db, booking_id)
        refund_fee_and_tell(c, uow, booking, session_id, key, change_key, refusal.code, notify=notify)
        uow.commit()
    return refusal


def refund_fee_and_tell(c, uow, booking, session_id: str, key: str, change_key: str, code: str, *,
                        notify: bool, why: str | None = None) -> int:
    """In the caller's transaction, under the booking's lock: give back the change's charged fee
    (once: its refund key) and, with `notify`, tell the customer that the session keeps its time
    and why (`why`, one line; by default a service stayed unavailable). Returns the cents refunded."""
    refunded = plan_fee_refund(uow, booking.id, key, change_key, reason=f"reschedule refused: {code}")
    session = uow.db.get(Session, session_id)
    if notify and session is not None and session.status == "confirmed":
        # The message id comes from the change key: a second pass queues nothing new.
        view = booking_view(uow.db, booking, c.settings)
        queue_emails(uow, compose.reschedule_failed(view, session_id, refunded, change_key, why=why),
                     booking_id=booking.id)
    return refunded


def give_up_reschedule(c, session_id: str, change_key: str, *, token: str | None = None,
                       admin: bool = False) -> ServiceError | None:
    """The reschedule task's last word when it cannot finish (transient failures outlived its
    retries, or it failed unexpectedly): `abandon_reschedule` for a request that was genuinely
    the customer's or the administrator's. Returns the refusal to answer with, or None (not
    authorized, unknown session, or the session was moved after all)."""
    if not admin and verify_manage_token(c.settings.secret_key, token) != session_id:
        return None  # nothing to refuse or refund on anyone's behalf
    with c.read() as db:
        booking_id = booking_of(db, [session_id])
    if booking_id is None:
        return None
    return abandon_reschedule(c, booking_id, change_key, session_id=session_id, notify=not admin)


def orphaned_fees(db: Db, now: datetime, grace: timedelta, window: timedelta) -> list[tuple[str, str]]:
    """(booking id, change key) of each fee charged or left pending between `window` and `grace`
    ago whose change neither moved its session nor gave the fee back, oldest first. Three
    queries whatever the number of fees: the fees, the moves of their bookings, their refunds."""
    fees = db.execute(select(LedgerEntry.booking_id, LedgerEntry.idempotency_key).where(
        CHARGED_FEE,  # through the partial index ix_ledger_entries_fees
        LedgerEntry.updated_at <= now - grace, LedgerEntry.updated_at >= now - window,
    ).order_by(LedgerEntry.updated_at, LedgerEntry.id)).all()
    if not fees:
        return []
    changes = [(booking_id, change_of_fee(booking_id, key)) for booking_id, key in fees]
    # Settled: the session moved, or nothing of the fee was left to give back.
    moved = {(a.booking_id, (a.details or {}).get("change")) for a in db.execute(select(Activity).where(
        Activity.booking_id.in_(sorted({b for b, _ in changes})),
        Activity.action.in_(("session.rescheduled", FEE_NOT_REFUNDED)))).scalars()}
    refunded = set(db.execute(select(LedgerEntry.idempotency_key).where(
        LedgerEntry.idempotency_key.in_([refund_key(b, ch) for b, ch in changes]))).scalars())
    return [(b, ch) for b, ch in changes if (b, ch) not in moved and refund_key(b, ch) not in refunded]


def refund_orphaned_fees(c, grace: timedelta, window: timedelta, limit: int = MAX_FEES_PER_TICK) -> dict:
    """The beat sweep: abandon every reschedule whose fee stayed charged (or pending) for
    `grace` without a move or a refund; its task gave up without reaching the database, or was
    lost. Keep `grace` far beyond a task's whole retry window and the broker's redelivery (the
    default is an hour). A booking that fails (Stripe or the database down) is tried again on the
    next tick. Returns {"found", "abandoned", "failed"}."""
    with c.read() as db:
        orphans = orphaned_fees(db, c.clock(), grace, window)
    report = {"found": len(orphans), "abandoned": 0, "failed": 0}
    for booking_id, change_key in orphans[:limit]:
        try:
            abandon_reschedule(c, booking_id, change_key, settle=True)
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("could not refund the fee of reschedule %s of booking %s: %s", change_key, booking_id,
                        getattr(exc, "code", type(exc).__name__))
            report["failed"] += 1
        else:
            report["abandoned"] += 1
    return report
