"""Moving one session to a new time.

Order matters because the fee is money: (1) check everything and hold the fee's ledger row,
(2) charge the fee off-session, outside any transaction (a decline ends it, nothing moved),
(3) one transaction moves the session (same id, number and calendar UID, SEQUENCE raised),
re-plans its reminders, records the activity and queues the notice, (4) a task moves the
meeting at the provider. A refusal after the fee was charged (the slot was taken meanwhile)
gives the fee back; so does a reschedule that cannot finish at all (`abandon`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Activity, Booking, BookingPage, EventType, Meeting, Owner, Session

from ..availability import Interval, SlotRules, block_of, check_slot, parse_instant, to_utc_iso
from ..booking.request import slot_taken
from ..booking.views import booking_view, policy_view
from ..calendar import request_sync
from ..errors import InvalidInput, OperationFailed, ServiceError
from ..limits import check_limits
from ..money import format_amount
from ..notifications import compose
from ..notifications.outbox import queue_emails
from ..notifications.reminders import replan_reminders
from ..scheduling import owner_busy
from . import policy
from .abandon import refund_fee_and_tell
from .access import actor_of, load_authorized, lock_booking
from .cancel import session_label
from .changes import MOVE_MEETING, begin_change, fee_key, recording_refusals
from .ledger import charge_fee, hold_fee

# The frozen booking terms that shape a session's time (the page's opening hours are current).
SCHEDULING_TERMS = ("slot_interval_minutes", "min_notice_minutes", "buffer_before_minutes", "buffer_after_minutes")


@dataclass(frozen=True)
class ReschedulePlan:
    booking: Booking
    session: Session
    new_start: datetime
    new_block: Interval
    fee: int  # cents


def booking_rules(db, booking: Booking) -> tuple[SlotRules, Owner]:
    """The slot rules a session of this booking is validated with: the booking page's current
    opening hours, and the duration and buffers the booking was made under."""
    page = db.get(BookingPage, booking.page_slug) if booking.page_slug else None
    if page is None:
        raise OperationFailed("booking_page_gone", f"the booking page {booking.page_slug!r} of booking {booking.id} "
                                                   "no longer exists, so no new time can be checked; cancel instead")
    terms = booking.terms or {}
    rules = SlotRules.from_config(page.availability, page.timezone, int(terms["duration_minutes"]),
                                  {key: terms.get(key) for key in SCHEDULING_TERMS})
    return rules, db.get(Owner, booking.owner_id)


def moved_cost(db, booking: Booking) -> int:
    """The relative costs of the sessions the customer moved so far, one per move: what the
    earlier reschedule fees were computed on (`policy.reschedule_fee`)."""
    costs = {s.id: s.relative_cost_cents for s in booking.sessions}
    moved = db.execute(select(Activity.session_id).where(
        Activity.booking_id == booking.id, Activity.action == "session.rescheduled",
        Activity.actor == actor_of(False))).scalars()
    return sum(costs.get(session_id, 0) for session_id in moved)


def plan_reschedule(db, c, session_id: str, new_start_iso: str, token: str | None, admin: bool, *,
                    window: bool = True) -> ReschedulePlan:
    """Authorize, check the customer's window on the session's current start (`window`), and the
    new time like at booking (free, on the grid, inside hours, with notice). The admin pays no fee
    and may move a session any time: outside the opening hours, off the grid, without notice, but
    never into the past nor onto another booking (or the owner's busy time)."""
    booking, (session,) = load_authorized(db, c.settings.secret_key, [session_id], [token] if token else None,
                                          admin, action="reschedule", now=c.clock())
    new_start = parse_instant(new_start_iso, field="the new time (--to)")
    terms, now = policy_view(booking.terms or {}), c.clock()
    if window and not admin:
        policy.check_window("reschedule", allowed=terms.reschedule_allowed,
                            min_notice_hours=terms.reschedule_min_notice_hours, start=session.start_at, now=now,
                            session_label=session_label(session))
    if new_start == session.start_at:
        raise InvalidInput("same_time", f"{session_label(session)} already starts at {to_utc_iso(new_start)}; "
                                        "choose a different time")
    rules, owner = booking_rules(db, booking)
    block = block_of(rules, new_start)
    busy = owner_busy(db, owner, block[0] - timedelta(days=1), block[1] + timedelta(days=1),
                      extra=c.busy_source, exclude_session_ids=[session.id])
    check_slot(rules, new_start, now=now, busy=busy, anytime=admin)
    # The event type's per-day and per-week limits, exactly as a booking into that time would meet them.
    event_type = db.get(EventType, booking.event_type_id) if booking.event_type_id else None
    if event_type is not None:
        check_limits(db, event_type, owner.timezone, new_start, exclude_session_ids=[session.id], action="moved there")
    fee = 0 if admin else policy.reschedule_fee(session.relative_cost_cents, terms.fee_percent,
                                                moved_before=moved_cost(db, booking))
    return ReschedulePlan(booking, session, new_start, block, fee)


def preview_reschedule(c, session_id: str, new_start_iso: str, token: str | None = None, admin: bool = False) -> dict:
    """Check a reschedule without changing anything (the CLI, before it enqueues the task)."""
    with c.read() as db:
        plan = plan_reschedule(db, c, session_id, new_start_iso, token, admin)
        return {"booking_id": plan.booking.id, "session_id": plan.session.id, "start": to_utc_iso(plan.new_start),
                "fee_cents": plan.fee, "currency": plan.booking.currency}


def reschedule_session(c, session_id: str, new_start_iso: str, token: str | None = None, admin: bool = False, *,
                       change_key: str, actor: str | None = None) -> dict:
    """Move a session to `new_start_iso`, charging the policy's fee first (customer only).

    Returns {"booking_id", "session_id", "start", "fee_cents", "change_key", "replayed"}. Raises
    the booking-time slot errors (`slot_unavailable`, ...), `policy_forbids`, `too_late_to_reschedule`,
    `fee_declined` or the errors of `authorize_sessions`; each refusal is recorded.
    """
    actor = actor_of(admin, actor)
    with recording_refusals(c, "reschedule", change_key, actor=actor, session_ids=[session_id]):
        with c.uow() as uow:
            if begin_change(uow, change_key, session_ids=[session_id]):
                return {"session_id": session_id, "change_key": change_key, "replayed": True}
            plan = plan_reschedule(uow.db, c, session_id, new_start_iso, token, admin)
            booking_id, key = plan.booking.id, fee_key(plan.booking.id, change_key)
            retried = False
            if plan.fee:
                _, retried = hold_fee(uow, plan.booking, session_id, plan.fee, key, actor=actor)
            uow.commit()
        charged = False
        try:
            if plan.fee:
                charge_fee(c, booking_id, key, retried=retried)
                charged = True
            return _move(c, session_id, new_start_iso, token, admin, actor=actor, fee=plan.fee, change_key=change_key)
        except ServiceError as exc:
            # The administrator hears the refusal from their own command and pays no fee; the
            # customer, who asked through a queue, is told why (and about a fee given back).
            if isinstance(exc, (InvalidInput, OperationFailed)) and (plan.fee or not admin):
                _refuse_after_check(c, booking_id, session_id, key, change_key, exc, charged=charged,
                                    notify=not admin)
            raise


def refusal_reason(exc: ServiceError, *, charged: bool) -> str:
    """Why a move that passed its first check did not happen, in the customer's words: a fee is
    mentioned only when one was charged."""
    if exc.code == "slot_unavailable":
        if charged:
            return "someone else booked that time while we were taking the fee"
        return "someone else booked that time just before we could move your session"
    if exc.code == "limit_reached":
        return "that day or week was fully booked " + ("while we were taking the fee" if charged
                                                       else "just before we could move your session")
    return f"the new time could not be given to you ({exc.message})"


def _refuse_after_check(c, booking_id: str, session_id: str, key: str, change_key: str, exc: ServiceError, *,
                        charged: bool, notify: bool) -> None:
    """The move was refused after its first check (the slot was taken meanwhile, the fee declined):
    give a charged fee back, once per change, and tell the customer the real reason."""
    with c.uow() as uow:
        booking = lock_booking(uow.db, booking_id)
        refund_fee_and_tell(c, uow, booking, session_id, key, change_key, exc.code, notify=notify,
                            why=refusal_reason(exc, charged=charged))
        uow.commit()

def _move(c, session_id: str, new_start_iso: str, token: str | None, admin: bool, *, actor: str, fee: int,
          change_key: str) -> dict:
    """Step 3: re-check the session and the slot (the window was checked before the fee) and move."""
    try:
        with c.uow() as uow:
            if begin_change(uow, change_key, session_ids=[session_id]):
                return {"session_id": session_id, "change_key": change_key, "replayed": True}
            plan = plan_reschedule(uow.db, c, session_id, new_start_iso, token, admin, window=False)
            result = _apply(uow, c, plan, actor=actor, fee=fee, change_key=change_key)
            uow.commit()
            return result
    except IntegrityError:
        # PostgreSQL's exclusion constraint: another booking took the time after our check.
        raise slot_taken(to_utc_iso(parse_instant(new_start_iso)))


def _apply(uow, c, plan: ReschedulePlan, *, actor: str, fee: int, change_key: str) -> dict:
    booking, s, db = plan.booking, plan.session, uow.db
    old_start, old_end = s.start_at, s.end_at
    s.start_at, s.end_at = plan.new_start, plan.new_start + (old_end - old_start)
    s.block_start, s.block_end = plan.new_block
    s.sequence += 1  # same UID, higher SEQUENCE: calendars update the event instead of adding one
    db.flush()  # PostgreSQL checks the exclusion constraint here
    replan_reminders(db, booking, s, now=c.clock())
    uow.record("session.rescheduled", booking_id=booking.id, session_id=s.id, actor=actor, number=s.number,
               **{"from": to_utc_iso(old_start), "to": to_utc_iso(s.start_at)},
               fee=format_amount(fee, booking.currency), currency=booking.currency, change=change_key)
    view = booking_view(db, booking, c.settings)
    queue_emails(uow, compose.session_rescheduled(view, s.id, old_start, old_end, fee, change_key, now=c.clock()),
                 booking_id=booking.id)
    uow.enqueue(MOVE_MEETING, booking_id=booking.id, session_id=s.id)
    request_sync(uow, booking.id, booking.owner_id)
    return {"booking_id": booking.id, "session_id": s.id, "start": to_utc_iso(s.start_at), "fee_cents": fee,
            "change_key": change_key, "replayed": False}


def move_meeting(c, booking_id: str, session_id: str) -> None:
    """The task body: move the session's meeting to the session's current time. Idempotent: it
    always sends the current time, so a late or repeated run leaves the meeting right."""
    from ..conferencing import meeting_request, provider_for  # one definition of a meeting's request

    with c.read() as db:
        meeting = db.execute(select(Meeting).where(Meeting.session_id == session_id,
                                                   Meeting.status == "active")).scalar_one_or_none()
        session = db.get(Session, session_id)
        if meeting is None or session is None or session.status != "confirmed" or not meeting.external_id:
            return
        request = meeting_request(db.get(Booking, booking_id), session)
        meeting_id, provider_name, external_id = meeting.id, meeting.provider, meeting.external_id
    details = provider_for(c, provider_name).update(external_id, request)
    with c.uow() as uow:
        row = uow.db.get(Meeting, meeting_id)
        if details is not None and row.status == "active":
            row.external_id, row.join_url, row.password = details.external_id, details.join_url, details.password
            row.dial_in, row.host_url = details.dial_in, details.host_url
        uow.record("meeting.moved", booking_id=booking_id, session_id=session_id, provider=provider_name,
                   meeting_id=row.external_id, start=to_utc_iso(request.start))
        if details is not None:  # new join or host links must reach the owner's calendar event
            request_sync(uow, booking_id, uow.db.get(Booking, booking_id).owner_id)
        uow.commit()
