"""Cancelling one or more sessions of a booking, with the policy's refund.

Cancelling a request that still awaits the owner's approval (manual booking mode) withdraws it
instead: see `withdraw` (no policy, no money, the whole request at once).

The decision is one transaction: sessions cancelled, reminders dropped, the refund's pending
ledger rows, the activity, the booking cancelled once no session is left, and one consolidated
email pair. The outside work follows in tasks: deleting the meetings (`finish_cancellation`)
and sending the refund (`ledger.send_refunds`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import select

from models import Booking, Meeting, Session

from ..booking.views import booking_view, policy_view
from ..calendar import request_sync
from ..errors import InvalidInput, PermanentError
from ..money import format_amount
from ..notifications import compose
from ..notifications.outbox import queue_emails
from ..notifications.reminders import drop_reminders
from . import policy
from .access import actor_of, load_authorized
from .changes import FINISH_CANCELLATION, begin_change, clean_reason, recording_refusals
from .ledger import enqueue_refund, money_position, plan_refund
from .withdraw import apply_withdrawal, check_whole_request


@dataclass(frozen=True)
class CancelPlan:
    """A checked cancellation: the sessions and each one's refund in cents. `withdraw`: the
    booking is a request awaiting approval, so the cancellation withdraws it (no refunds)."""

    booking: Booking
    sessions: list[Session]
    refunds: list[int]
    withdraw: bool = False

    @property
    def refund_total(self) -> int:
        return sum(self.refunds)


def session_label(session: Session) -> str:
    return f"session {session.number} ({session.id})"


def plan_cancel(db, c, session_ids: Sequence[str], tokens: Sequence[str] | None, admin: bool,
                refund: bool, reason: str | None = None) -> CancelPlan:
    """Authorize, apply the policy (the customer's window; the admin has none) and work out the
    refunds: the policy's percent of the sessions' relative costs, rounded cumulatively over the
    package (`policy.refund_amounts`), within what is refundable."""
    booking, sessions = load_authorized(db, c.settings.secret_key, session_ids, tokens, admin, action="cancel",
                                        now=c.clock(), allow_request=True)
    if booking.status == "awaiting_approval":
        # Nothing is booked or paid yet: no policy window, no refund, the whole request at once.
        check_whole_request(booking, sessions)
        return CancelPlan(booking, sessions, [0] * len(sessions), withdraw=True)
    terms = policy_view(booking.terms or {})
    if not admin and (booking.terms or {}).get("policies", {}).get("cancel", {}).get("reason_required") \
            and not clean_reason(reason):
        raise InvalidInput("reason_required", "this booking's policy asks for a reason when a session is "
                                              "cancelled; give one (--reason)")
    if not admin:
        for s in sessions:
            policy.check_window("cancel", allowed=terms.cancel_allowed, min_notice_hours=terms.cancel_min_notice_hours,
                                start=s.start_at, now=c.clock(), session_label=session_label(s))
    wanted = policy.refund_amounts([s.relative_cost_cents for s in sessions], terms.refund_percent,
                                   cancelled_before=policy.cancelled_cost(booking.sessions)) if refund else []
    refunds = policy.cap_amounts(wanted, money_position(db, booking.id).refundable) if wanted else [0] * len(sessions)
    return CancelPlan(booking, sessions, refunds)


def preview_cancel(c, session_ids: Sequence[str], tokens: Sequence[str] | None = None, admin: bool = False,
                   refund: bool = True, reason: str | None = None) -> dict:
    """Check a cancellation without changing anything (the CLI, before it enqueues the task).
    Raises what `cancel_sessions` would; returns the booking id and the refund in cents."""
    clean_reason(reason)
    with c.read() as db:
        plan = plan_cancel(db, c, session_ids, tokens, admin, refund, reason)
        return {"booking_id": plan.booking.id, "session_ids": [s.id for s in plan.sessions],
                "refund_cents": plan.refund_total, "currency": plan.booking.currency, "withdraw": plan.withdraw}


def cancel_sessions(c, session_ids: Sequence[str], tokens: Sequence[str] | None = None, admin: bool = False,
                    refund: bool = True, reason: str | None = None, *, change_key: str,
                    actor: str | None = None) -> dict:
    """Cancel sessions of one booking as the customer (one token per session) or the admin
    (`actor`: who, as the activity stream names them, see `access.actor_of`).

    Returns {"booking_id", "cancelled", "refund_cents", "change_key", "replayed"}. Running it
    again with the same `change_key` changes nothing. Raises the errors of `authorize_sessions`,
    `policy_forbids`, `too_late_to_cancel`; each refusal is recorded in the activity stream.
    A request awaiting approval is withdrawn as a whole (`withdraw.apply_withdrawal`; the result
    then has "withdrawn": True), or refused with `withdraw_whole_request` when not all of its
    sessions are named.
    """
    actor = actor_of(admin, actor)
    with recording_refusals(c, "cancel", change_key, actor=actor, session_ids=session_ids):
        reason = clean_reason(reason)
        with c.uow() as uow:
            if begin_change(uow, change_key, session_ids=session_ids):
                return {"change_key": change_key, "replayed": True}
            plan = plan_cancel(uow.db, c, session_ids, tokens, admin, refund, reason)
            apply = apply_withdrawal if plan.withdraw else _apply
            result = apply(uow, c, plan, actor=actor, reason=reason, change_key=change_key)
            uow.commit()
            return result


def _apply(uow, c, plan: CancelPlan, *, actor: str, reason: str | None, change_key: str) -> dict:
    booking, db, now = plan.booking, uow.db, c.clock()
    ids = [s.id for s in plan.sessions]
    for s, amount in zip(plan.sessions, plan.refunds):
        s.status, s.cancelled_at, s.cancel_reason = "cancelled", now, reason
        s.sequence += 1  # the CANCEL in the calendar file must supersede what was sent before
        uow.record("session.cancelled", booking_id=booking.id, session_id=s.id, actor=actor, number=s.number,
                   refund=format_amount(amount, booking.currency), currency=booking.currency, reason=reason,
                   change=change_key)
    drop_reminders(db, ids)
    parts = plan_refund(uow, booking, plan.refund_total, change_key, actor=actor, reason=reason,
                        session_id=ids[0] if len(ids) == 1 else None)
    if all(s.status == "cancelled" for s in booking.sessions):
        booking.status = "cancelled"
        uow.record("booking.cancelled", booking_id=booking.id, actor=actor, reason=reason, change=change_key)
    db.flush()
    view = booking_view(db, booking, c.settings)
    queue_emails(uow, compose.sessions_cancelled(view, ids, plan.refund_total, change_key, reason=reason, now=now),
                 booking_id=booking.id)
    uow.enqueue(FINISH_CANCELLATION, booking_id=booking.id, session_ids=ids)
    request_sync(uow, booking.id, booking.owner_id)
    enqueue_refund(uow, booking.id, parts)
    return {"booking_id": booking.id, "cancelled": ids, "refund_cents": plan.refund_total,
            "change_key": change_key, "replayed": False}


def finish_cancellation(c, booking_id: str, session_ids: list[str]) -> None:
    """The task body: delete each cancelled session's meeting (deleting twice is harmless). The
    state is read from the database: a session that is not cancelled keeps its meeting.

    A provider that refuses for good is recorded and the other meetings are still deleted; the
    first refusal is raised at the end. Transient failures propagate, so the task retries.
    """
    from ..conferencing import provider_for

    with c.read() as db:
        # Only meetings of this booking's sessions that are cancelled: a forged or stale message
        # naming a confirmed session deletes nothing.
        meetings = [(m.id, m.session_id, m.provider, m.external_id) for m in db.execute(
            select(Meeting).join(Session, Session.id == Meeting.session_id).where(
                Meeting.session_id.in_(list(session_ids or [])), Meeting.status != "deleted",
                Session.booking_id == booking_id, Session.status == "cancelled")).scalars()]
    refused = None
    for meeting_id, session_id, provider_name, external_id in meetings:
        try:
            if external_id is not None:
                provider_for(c, provider_name).delete(external_id)
        except PermanentError as exc:
            refused = refused or exc
            _record_meeting(c, booking_id, session_id, "meeting.delete_failed", code=exc.code, message=exc.message)
            continue
        _record_meeting(c, booking_id, session_id, "meeting.deleted", meeting_row=meeting_id,
                        provider=provider_name, meeting_id=external_id)
    if refused is not None:
        raise refused


def _record_meeting(c, booking_id: str, session_id: str, action: str, meeting_row: int | None = None, **details) -> None:
    with c.uow() as uow:
        if meeting_row is not None:
            row = uow.db.get(Meeting, meeting_row)
            if row.status == "deleted":
                return  # a concurrent run got there first
            row.status, row.deleted_at = "deleted", c.clock()
        uow.record(action, booking_id=booking_id, session_id=session_id, **details)
        uow.commit()
