"""The customer's view of a package: every session with what the policy lets them do *now*.

`manage_view(c, session_id)` is what the cancel/reschedule page and `GET /api/v1/manage/{token}`
show: per session, whether it can be cancelled (and if not, why, in plain words), the refund a
cancellation would give, whether it can be rescheduled and the fee. It uses the same policy
functions as the changes themselves (`policy.check_window`, `refund_amounts`, `cap_amounts`,
`reschedule_fee`), so what the page promises is what the worker does. Read only.

`reschedule_times(c, session_id, ...)` lists the free start times a session can move to: the same
availability engine as booking (the booking page's opening hours, the booking's duration and
buffers, the owner's other sessions and calendar), with the session's own time freed.

Callers verify the customer's token first; these functions take the verified session id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from models import Booking, EventType, Session

from ..availability import free_slots, to_utc_iso
from ..booking.views import PUBLIC_SESSION_STATUS, booking_object, booking_view
from ..errors import NotFound, OperationFailed
from ..money import format_amount
from ..notifications.views import BookingView, MeetingView, PolicyView
from ..limits import filter_full
from ..scheduling import owner_busy
from . import policy
from .ledger import money_position
from .reschedule import booking_rules, moved_cost

# How far ahead the reschedule page offers times, and how many days one page of times covers.
RESCHEDULE_HORIZON_DAYS = 180
TIMES_PAGE_DAYS = 3


@dataclass(frozen=True)
class Refusal:
    """Why an action is not available now: a stable code and a sentence for the customer."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class SessionChoice:
    """One session as its customer sees it, with what they may do now."""

    id: str
    number: int
    status: str  # confirmed | cancelled | pending
    start: datetime
    end: datetime
    relative_cost_cents: int
    past: bool
    meeting: MeetingView | None
    conferencing_info_url: str
    cancel_reason: str | None
    can_cancel: bool
    cancel_refusal: Refusal | None
    refund_if_cancelled_cents: int | None  # None when it cannot be cancelled
    can_reschedule: bool
    reschedule_refusal: Refusal | None
    reschedule_fee_cents: int | None  # None when it cannot be rescheduled

    @property
    def active(self) -> bool:
        return self.status == "confirmed" and not self.past


@dataclass(frozen=True)
class ManageView:
    """The package's page: the booking's facts and every session, in number order."""

    booking: BookingView
    sessions: list[SessionChoice]
    selected_session_id: str
    refundable_cents: int
    reason_required: bool
    now: datetime
    cancelled_cost_cents: int = 0  # relative cost of the sessions cancelled so far (cumulative refunds)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def policies(self) -> PolicyView:
        return self.booking.policies

    def session(self, session_id: str | None) -> SessionChoice | None:
        return next((s for s in self.sessions if s.id == session_id), None)

    @property
    def cancellable(self) -> list[SessionChoice]:
        return [s for s in self.sessions if s.can_cancel]

    @property
    def reschedulable(self) -> list[SessionChoice]:
        return [s for s in self.sessions if s.can_reschedule]

    @property
    def awaiting_approval(self) -> bool:
        """A request in manual booking mode that the owner has not decided yet: the customer may
        withdraw it as a whole (services/lifecycle/withdraw.py)."""
        return self.booking.status == "awaiting_approval"


def _session(db, session_id: str) -> Session:
    session = db.get(Session, session_id)
    if session is None:
        raise NotFound("unknown_session", f"session {session_id!r} does not exist")
    return session


def _hours(hours: float) -> str:
    if hours >= 1 and float(hours).is_integer():
        return f"{int(hours)} hour" + ("" if hours == 1 else "s")
    minutes = round(hours * 60)
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def _refusal(action: str, booking: Booking, session: Session, terms: PolicyView, now: datetime,
             owner_name: str) -> Refusal | None:
    """Why the customer cannot `action` ("cancel" | "reschedule") this session now, or None."""
    verb = {"cancel": "cancelled", "reschedule": "rescheduled"}[action]
    if session.status == "cancelled":
        return Refusal("session_already_cancelled", "This session is cancelled.")
    if session.start_at <= now:
        if session.end_at > now:
            return Refusal("session_in_progress", "This session is under way.")
        return Refusal("session_past", "This session has already taken place.")
    if booking.status == "awaiting_approval":
        return Refusal("awaiting_approval", f"{owner_name or 'The owner'} has not confirmed this booking yet.")
    if session.status != "confirmed" or booking.status != "confirmed":
        return Refusal("session_not_confirmed", "This booking is not confirmed yet; try again in a minute.")
    allowed = terms.cancel_allowed if action == "cancel" else terms.reschedule_allowed
    notice = terms.cancel_min_notice_hours if action == "cancel" else terms.reschedule_min_notice_hours
    try:
        policy.check_window(action, allowed=allowed, min_notice_hours=notice, start=session.start_at, now=now,
                            session_label=f"session {session.number}")
    except OperationFailed as exc:
        who = owner_name or "the organizer"
        if exc.code == "policy_forbids":
            return Refusal(exc.code, f"The booking's policy does not allow sessions to be {verb} online; "
                                     f"contact {who}.")
        return Refusal(exc.code, f"It is less than {_hours(notice)} before the session; it could be {verb} "
                                 f"up to {_hours(notice)} before it starts. Contact {who} instead.")
    return None


def manage_view(c, session_id: str) -> ManageView:
    """The package of `session_id` (already authorized by its token) as its customer sees it now.

    Refunds are the policy's percent of each session's relative cost (rounded cumulatively over
    the package, as the cancellation will round it), capped (first sessions
    first, as a cancellation of several would be) by what is still refundable. Raises NotFound
    when the session does not exist.
    """
    now = c.clock()
    with c.read() as db:
        session = _session(db, session_id)
        booking = session.booking
        view = booking_view(db, booking, c.settings)
        refundable = money_position(db, booking.id).refundable
        terms = view.policies
        cancel_terms = (booking.terms or {}).get("policies", {}).get("cancel", {})
        by_id = {s.id: s for s in booking.sessions}
        cancelled_before, moved_before = policy.cancelled_cost(booking.sessions), moved_cost(db, booking)
        choices = []
        for sv in sorted(view.sessions, key=lambda s: s.number):
            row = by_id[sv.id]
            cancel_no = _refusal("cancel", booking, row, terms, now, view.owner_name)
            move_no = _refusal("reschedule", booking, row, terms, now, view.owner_name)
            refund = None
            if cancel_no is None:
                wanted = policy.refund_amounts([row.relative_cost_cents], terms.refund_percent, cancelled_before)
                refund = policy.cap_amounts(wanted, refundable)[0]
            fee = None if move_no is not None else policy.reschedule_fee(row.relative_cost_cents, terms.fee_percent,
                                                                         moved_before)
            choices.append(SessionChoice(
                id=sv.id, number=sv.number, status=PUBLIC_SESSION_STATUS.get(sv.status, sv.status),
                start=sv.start, end=sv.end, relative_cost_cents=sv.relative_cost_cents,
                past=sv.end <= now, meeting=sv.meeting, conferencing_info_url=sv.conferencing_info_url,
                cancel_reason=row.cancel_reason,
                can_cancel=cancel_no is None, cancel_refusal=cancel_no, refund_if_cancelled_cents=refund,
                can_reschedule=move_no is None, reschedule_refusal=move_no, reschedule_fee_cents=fee,
            ))
        return ManageView(booking=view, sessions=choices, selected_session_id=session_id,
                          refundable_cents=refundable, reason_required=bool(cancel_terms.get("reason_required")),
                          now=now, cancelled_cost_cents=cancelled_before)


def cancel_refund(view: ManageView, session_ids: list[str]) -> int:
    """The refund cancelling these sessions together would give (capped as the worker caps it)."""
    chosen = [s for s in view.sessions if s.id in session_ids]
    wanted = policy.refund_amounts([s.relative_cost_cents for s in chosen], view.policies.refund_percent,
                                   view.cancelled_cost_cents)
    return sum(policy.cap_amounts(wanted, view.refundable_cents))


def manage_object(c, session_id: str) -> dict[str, Any]:
    """`GET /api/v1/manage/{token}`: the booking object as its customer sees it (no activity
    stream), each session adding `can_cancel`, `cancel_refusal`, `refund_if_cancelled`,
    `can_reschedule`, `reschedule_refusal`, `reschedule_fee` (money as decimal strings, null
    when the action is not available; a refusal is {"code", "message"})."""
    view = manage_view(c, session_id)
    with c.read() as db:
        obj = booking_object(db, db.get(Booking, view.booking.id), c.settings)
    obj.pop("activity", None)
    cur = view.booking.currency
    by_id = {s.id: s for s in view.sessions}
    for s in obj["sessions"]:
        choice = by_id[s["id"]]
        s.update({
            "can_cancel": choice.can_cancel,
            "cancel_refusal": choice.cancel_refusal.as_dict() if choice.cancel_refusal else None,
            "refund_if_cancelled": (format_amount(choice.refund_if_cancelled_cents, cur)
                                    if choice.refund_if_cancelled_cents is not None else None),
            "can_reschedule": choice.can_reschedule,
            "reschedule_refusal": choice.reschedule_refusal.as_dict() if choice.reschedule_refusal else None,
            "reschedule_fee": (format_amount(choice.reschedule_fee_cents, cur)
                               if choice.reschedule_fee_cents is not None else None),
        })
    obj["cancel_reason_required"] = view.reason_required
    return obj


@dataclass(frozen=True)
class TimesPage:
    """Free start times for one session, grouped by local day in `tz`, one page of days."""

    days: list[tuple[date, list[datetime]]]
    first_day: date
    last_day: date
    next_from: date | None
    previous_from: date | None


def reschedule_times(c, session_id: str, tz: str, from_day: date | None = None,
                     days: int = TIMES_PAGE_DAYS) -> TimesPage:
    """Where `session_id` can move: free starts on `days` local days (in `tz`) from `from_day`
    (today by default), the session's own block freed, the same rules as `preview_reschedule`.
    The current start itself is left out (moving to the same time is refused)."""
    zone = ZoneInfo(tz)
    now = c.clock()
    today = now.astimezone(zone).date()
    last_allowed = today + timedelta(days=RESCHEDULE_HORIZON_DAYS)
    first = max(today, min(from_day or today, last_allowed))
    last = min(first + timedelta(days=days - 1), last_allowed)
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    with c.read() as db:
        session = _session(db, session_id)
        rules, owner = booking_rules(db, session.booking)
        busy = owner_busy(db, owner, start - timedelta(days=1), end + timedelta(days=1), extra=c.busy_source,
                          exclude_session_ids=[session.id])
        own_start = session.start_at
        slots = [s for s in free_slots(rules, start, end, now=now, busy=busy) if s != own_start]
        # The event type's per-day and per-week limits, as `plan_reschedule` checks them.
        event_type = db.get(EventType, session.booking.event_type_id) if session.booking.event_type_id else None
        if event_type is not None:
            slots = filter_full(db, event_type, owner.timezone, slots, exclude_session_ids=[session.id])
    grouped: dict[date, list[datetime]] = {}
    for s in slots:
        grouped.setdefault(s.astimezone(zone).date(), []).append(s)
    return TimesPage(
        days=sorted(grouped.items()), first_day=first, last_day=last,
        next_from=last + timedelta(days=1) if last < last_allowed else None,
        previous_from=max(today, first - timedelta(days=days)) if first > today else None,
    )


@dataclass(frozen=True)
class ChangeSummary:
    """What one change did, as its customer reads it on the confirmation page.

    `state`: `queued` (not decided yet), `applied` (written; its money may still be on its way to
    Stripe), `done` (applied and its money moved), `refused` (`error` says why; nothing changed).
    `cancelled`: [(number, refund cents)]; `rescheduled`: [(number, from, to, fee cents)];
    `refunded_cents` / `fee_cents`: the money that reached Stripe for this change.
    """

    state: str
    error: dict | None
    cancelled: list[tuple[int, int]]
    rescheduled: list[tuple[int, datetime, datetime, int]]
    refunded_cents: int
    fee_cents: int
    fee_refunded: bool = False
    withdrawn: bool = False  # the change withdrew a request awaiting approval


def _cents(text: Any, currency: str) -> int:
    from ..money import parse_amount

    try:
        return parse_amount(str(text), currency)
    except Exception:
        return 0


def change_summary(c, booking_id: str, change_id: str) -> ChangeSummary:
    """The change `change_id` of booking `booking_id` (read from the activity stream and the
    ledger, where the worker writes it)."""
    from sqlalchemy import select

    from models import Activity, LedgerEntry

    from ..availability import parse_instant
    from .changes import _keys_of_change, change_outcome, money_pending

    with c.read() as db:
        booking = db.get(Booking, booking_id)
        if booking is None:
            raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist")
        cur = booking.currency
        outcome = change_outcome(db, booking_id, change_id)
        entries = [a for a in db.execute(select(Activity).where(Activity.booking_id == booking_id)
                                         .order_by(Activity.id)).scalars()
                   if (a.details or {}).get("change") == change_id]
        cancelled, rescheduled = [], []
        withdrawn = any(a.action == "booking.withdrawn" for a in entries)
        for a in entries:
            d = a.details or {}
            if a.action == "session.cancelled":
                cancelled.append((int(d.get("number", 0)), _cents(d.get("refund", "0"), cur)))
            elif a.action == "session.rescheduled":
                rescheduled.append((int(d.get("number", 0)), parse_instant(d["from"]), parse_instant(d["to"]),
                                    _cents(d.get("fee", "0"), cur)))
        moved = {"refund": 0, "fee": 0}
        for kind, amount, key in db.execute(select(LedgerEntry.kind, LedgerEntry.amount_cents,
                                                   LedgerEntry.idempotency_key)
                                            .where(LedgerEntry.booking_id == booking_id,
                                                   LedgerEntry.status == "succeeded")):
            if key and _keys_of_change(booking_id, change_id, key) and kind in moved:
                moved[kind] += int(amount)
        if outcome is None:
            state, error = "queued", None
        elif outcome.state == "refused":
            state, error = "refused", outcome.error.as_dict()
        else:
            state = "applied" if money_pending(db, booking_id, change_id) else "done"
            error = None
    return ChangeSummary(state=state, error=error, cancelled=cancelled, rescheduled=rescheduled,
                         refunded_cents=moved["refund"], fee_cents=moved["fee"],
                         fee_refunded=state == "refused" and moved["fee"] > 0, withdrawn=withdrawn)




@dataclass(frozen=True)
class MeetingPage:
    """`/meeting/<info-token>`: one session's meeting as its customer sees it."""

    booking: BookingView
    session: Any  # SessionView
    provider: str  # the booking's conferencing provider (`none`: in person)
    location: str | None  # where an in-person session takes place
    over: bool


def meeting_view(c, session_id: str) -> MeetingPage:
    with c.read() as db:
        session = _session(db, session_id)
        booking = session.booking
        view = booking_view(db, booking, c.settings)
        et = db.get(EventType, booking.event_type_id) if booking.event_type_id else None
        location = (et.policies or {}).get("conferencing_location") if et is not None else None
        provider = (booking.terms or {}).get("conferencing_provider", "none")
    sv = next(s for s in view.sessions if s.id == session_id)
    return MeetingPage(booking=view, session=sv, provider=provider, location=location, over=sv.end <= c.clock())


__all__ = ["ChangeSummary", "ManageView", "Refusal", "SessionChoice", "TimesPage", "cancel_refund", "change_summary",
           "manage_object", "manage_view", "MeetingPage", "meeting_view", "reschedule_times"]
