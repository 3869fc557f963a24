"""The booking saga: hold -> authorize -> conferencing -> capture (pivot: confirm, notify, remind).

Each step is a function of (container, booking_id) that a thin Celery task calls. The booking
row carries the saga's next step (`saga_step`), and every step outcome is kept in `saga_steps`,
so any worker can resume a booking and every step is safe to run twice: a step that finds the
booking elsewhere in the saga does nothing. Before the pivot a failure runs the compensations
(delete meetings, cancel the authorization, release the slots) and the booking ends `failed`.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Booking, Customer, LedgerEntry, Meeting, Owner, Payment, SagaStep, Session, utcnow
from ..availability import to_utc_iso
from ..calendar import request_sync
from ..conferencing.base import MeetingRequest
from ..errors import InvalidInput, OperationFailed, PermanentError, ServiceError
from ..money import allocate, format_amount
from ..notifications.outbox import queue_emails
from ..notifications.reminders import plan_reminders
from .ids import booking_id_for, calendar_uid, new_session_id
from .request import BookingPlan, conflicting_slot, parse_request, plan_booking, slot_taken
from .views import booking_view, how_request_ended

log = logging.getLogger("sessionpack.workflow")

TASK_FOR_STEP = {
    "authorize": "sessionpack.authorize_payment",
    "conferencing": "sessionpack.provision_conferencing",
    "capture": "sessionpack.capture_payment",
    "compensate": "sessionpack.compensate_booking",
}
STEP_ORDER = ("authorize", "conferencing", "capture")
DEFAULT_APPROVAL_EXPIRY_HOURS = 72.0


def _key(booking_id: str, step: str) -> str:
    """Deterministic idempotency key of one money movement of the saga."""
    return f"{booking_id}-{step}"


def _upsert(db):
    """The dialect's INSERT with ON CONFLICT support (PostgreSQL and SQLite both have it)."""
    if db.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_MARK_STEPS: dict[str, Any] = {}


def _mark_steps_statement(db):
    """The saga log's upsert, built once per dialect: reusing one statement object lets
    SQLAlchemy skip building and hashing a new construct for each of a booking's ~7 marks."""
    dialect = db.bind.dialect.name
    stmt = _MARK_STEPS.get(dialect)
    if stmt is None:
        stmt = _upsert(db)(SagaStep)
        stmt = _MARK_STEPS[dialect] = stmt.on_conflict_do_update(
            index_elements=["booking_id", "step"],
            set_={"outcome": stmt.excluded.outcome, "error": stmt.excluded.error, "updated_at": stmt.excluded.updated_at,
                  "attempts": SagaStep.attempts + stmt.excluded.attempts})
    return stmt


def _mark_step(db, booking_id: str, step: str, outcome: str, error: dict | None = None) -> None:
    """Record a step's latest outcome in the saga log (one upsert statement)."""
    _mark_steps(db, booking_id, (step,), outcome, error)


def _mark_steps(db, booking_id: str, steps: Iterable[str], outcome: str, error: dict | None = None) -> None:
    """Record the same outcome for several steps in one round trip; `started` counts an attempt."""
    now, started = utcnow(), 1 if outcome == "started" else 0
    # Core, not the ORM's bulk path: the saga log is never read back in the same transaction.
    db.connection().execute(_mark_steps_statement(db), [
        {"booking_id": booking_id, "step": step, "outcome": outcome, "error": error, "attempts": started,
         "updated_at": now} for step in steps])


def _next_step(booking: Booking, after: str | None) -> str:
    """The step after `after`, skipping what this booking does not need."""
    needed = {
        "authorize": booking.price_cents > 0,
        "conferencing": booking.terms.get("conferencing_provider", "none") != "none",
        "capture": True,
    }
    start = 0 if after is None else STEP_ORDER.index(after) + 1
    return next(step for step in STEP_ORDER[start:] if needed[step])


def _advance(uow, booking: Booking, done_step: str) -> None:
    _mark_step(uow.db, booking.id, done_step, "done")
    booking.saga_step = _next_step(booking, done_step)
    uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking.id)


def _load_at_step(uow, booking_id: str, step: str) -> Booking | None:
    """The booking when it is pending at this step; None means there is nothing to do."""
    booking = uow.db.get(Booking, booking_id)
    if booking is None or booking.status != "pending" or booking.saga_step != step:
        return None
    return booking


# -- step 1: validate and hold --------------------------------------------------------------------


def submit_booking(c, data: Any) -> str | None:
    """Validate a request and hold all its slots, or record why it was refused.

    Returns the booking id (None only for a request without a usable request_id, which
    cannot be answered at all). The same request_id always gives the same, single booking.
    """
    request_id = data.get("request_id") if isinstance(data, dict) else None
    try:
        request, starts = parse_request(data)
    except InvalidInput as exc:
        if isinstance(request_id, str) and 0 < len(request_id) <= 200 and "\x00" not in request_id:
            return record_rejected(c, data, exc)
        log.warning("booking request without a usable request_id refused: %s", exc.code)
        return None

    booking_id = booking_id_for(request.request_id)
    with c.uow() as uow:
        if uow.db.get(Booking, booking_id) is not None:
            return booking_id  # a repeated request: the first one made the booking
        try:
            plan = plan_booking(uow.db, request, starts, now=c.clock(), extra_busy=c.busy_source)
        except ServiceError as exc:
            uow.db.rollback()
            return record_rejected(c, data, exc)
        try:
            _hold(c, uow, plan, booking_id)
            uow.commit()
            return booking_id
        except IntegrityError:
            # PostgreSQL's exclusion constraint refused an overlap with a concurrent booking, or
            # the same request won a race with itself.
            uow.db.rollback()
    with c.uow() as uow:
        if uow.db.get(Booking, booking_id) is not None:
            return booking_id
        slot = conflicting_slot(uow.db, plan)
    return record_rejected(c, data, slot_taken(slot))


def _terms(plan: BookingPlan) -> dict[str, Any]:
    """Everything the booking is made under, frozen now (config may change later)."""
    page, et, owner = plan.offering.page, plan.offering.event_type, plan.offering.owner
    return {
        "event_name": et.name, "page_name": page.name, "page_timezone": page.timezone,
        "owner_name": owner.name, "owner_email": owner.email, "owner_timezone": owner.timezone,
        "duration_minutes": et.duration_minutes, "sessions_per_booking": et.sessions_per_booking,
        "booking_mode": et.booking_mode, "min_notice_minutes": et.min_notice_minutes,
        "buffer_before_minutes": et.buffer_before_minutes, "buffer_after_minutes": et.buffer_after_minutes,
        "slot_interval_minutes": et.slot_interval_minutes,
        "conferencing_provider": et.conferencing_provider,
        "policies": {"cancel": dict(et.policies.get("cancel", {})), "reschedule": dict(et.policies.get("reschedule", {}))},
        "approval_expiry_hours": et.policies.get("approval_expiry_hours"),
        "reminders": list(et.reminders or []),
    }


def _upsert_customer(db, customer) -> int:
    """One customers row per email, updated with the latest details. An atomic upsert, because
    two bookings of one customer may be held at the same moment."""
    insert = _upsert(db)
    values = {"email": customer.email, "name": customer.name, "timezone": customer.timezone}
    db.execute(insert(Customer).values(**values, updated_at=utcnow()).on_conflict_do_update(
        index_elements=["email"], set_={"name": customer.name, "timezone": customer.timezone, "updated_at": utcnow()}))
    return db.execute(select(Customer.id).where(Customer.email == customer.email)).scalar_one()


def _hold(c, uow, plan: BookingPlan, booking_id: str) -> Booking:
    db, request, et = uow.db, plan.request, plan.offering.event_type
    customer_id = _upsert_customer(db, request.customer)
    price = et.price_cents or 0
    booking = Booking(
        id=booking_id, request_id=request.request_id, status="pending", saga_step="authorize",
        page_slug=plan.offering.page.slug, event_type_id=et.id, event_type_slug=et.slug or None,
        owner_id=plan.offering.owner.id, customer_id=customer_id,
        customer_name=request.customer.name, customer_email=request.customer.email,
        customer_timezone=request.customer.timezone, price_cents=price, currency=et.currency or "USD",
        payment_method=request.payment_method, terms=_terms(plan),
    )
    db.add(booking)
    uow.record("booking.requested", booking_id=booking_id, actor="customer",
               request_id=request.request_id, sessions=len(plan.starts))
    for number, (start, block, cost) in enumerate(
        zip(plan.starts, plan.blocks, allocate(price, len(plan.starts))), start=1
    ):
        session_id = new_session_id()
        db.add(Session(
            id=session_id, booking_id=booking_id, number=number, owner_id=booking.owner_id, status="held",
            start_at=start, end_at=start + plan.duration, block_start=block[0], block_end=block[1],
            relative_cost_cents=cost, uid=calendar_uid(session_id), sequence=0,
        ))
        uow.record("session.held", booking_id=booking_id, session_id=session_id, number=number, start=to_utc_iso(start))
    db.flush()  # PostgreSQL checks the exclusion constraint here
    _mark_step(db, booking_id, "hold", "done")
    if et.booking_mode == "manual":
        _await_approval(uow, booking, c.clock(), c.settings)
        return booking
    booking.saga_step = _next_step(booking, None)
    uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking_id)
    return booking


def _await_approval(uow, booking: Booking, now, settings) -> None:
    """Manual mode: the slot stays held until the owner decides or the request expires."""
    from ..notifications import compose

    hours = booking.terms.get("approval_expiry_hours") or DEFAULT_APPROVAL_EXPIRY_HOURS
    booking.status, booking.saga_step = "awaiting_approval", "approval"
    booking.expires_at = now + timedelta(hours=float(hours))
    uow.record("booking.awaiting_approval", booking_id=booking.id, expires_at=to_utc_iso(booking.expires_at))
    uow.db.flush()
    queue_emails(uow, compose.approval_requested(booking_view(uow.db, booking, settings)), booking_id=booking.id)


def record_rejected(c, data: dict, exc: ServiceError) -> str:
    """A refused request becomes a `failed` booking that holds nothing, so `show` can say why."""
    request_id = data["request_id"]
    booking_id = booking_id_for(request_id)
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}

    def text(value: Any, limit: int) -> str:
        return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""

    with c.uow() as uow:
        if uow.db.get(Booking, booking_id) is not None:
            return booking_id
        page = data.get("booking_page")
        uow.db.add(Booking(
            id=booking_id, request_id=request_id, status="failed", saga_step="done",
            failure={"step": "validate", "code": exc.code, "message": exc.message},
            page_slug=text(page, 64) or None, event_type_slug=text(data.get("event_type"), 64) or None,
            customer_name=text(customer.get("name"), 200), customer_email=text(customer.get("email"), 320),
            customer_timezone=text(customer.get("timezone"), 64) or "UTC", terms={},
        ))
        uow.record("booking.requested", booking_id=booking_id, actor="customer", request_id=request_id)
        uow.record("booking.failed", booking_id=booking_id, step="validate", code=exc.code, message=exc.message)
        try:
            uow.commit()
        except IntegrityError:
            pass  # recorded concurrently by a duplicate of the same request
    return booking_id


# -- step 2: authorize the package price ----------------------------------------------------------


def authorize_payment(c, booking_id: str) -> None:
    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "authorize")
        if booking is None:
            return
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        if payment is None:
            payment = Payment(booking_id=booking_id, amount_cents=booking.price_cents, currency=booking.currency,
                              payment_method=booking.payment_method, status="authorizing")
            uow.db.add(payment)
        _mark_step(uow.db, booking_id, "authorize", "started")
        uow.commit()
        amount, currency, method, email = booking.price_cents, booking.currency, booking.payment_method, booking.customer_email
        intent_id = payment.intent_id

    if intent_id is None:
        # The gateway recovers an authorization that reached Stripe before a crash (by the key in
        # its metadata), so a retried step never authorizes twice.
        auth = c.payments.authorize(amount_cents=amount, currency=currency, payment_method=method,
                                    email=email, booking_id=booking_id, idempotency_key=_key(booking_id, "authorize"))
    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "authorize")
        if booking is None:
            return
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one()
        if payment.intent_id is None:
            payment.intent_id, payment.stripe_customer_id = auth.intent_id, auth.customer_id
        payment.status = "authorized"
        uow.record("payment.authorized", booking_id=booking_id, amount=format_amount(amount, currency), currency=currency,
                   intent=payment.intent_id)
        _advance(uow, booking, "authorize")
        uow.commit()


# -- step 3: one meeting per session --------------------------------------------------------------


def meeting_request(booking: Booking, session: Session) -> MeetingRequest:
    """What the provider is asked to make for a session (the orphan sweep matches on it too)."""
    terms = booking.terms
    return MeetingRequest(
        session_id=session.id,
        topic=f"{terms.get('event_name', 'Session')} — session {session.number} of {len(booking.sessions)} with {booking.customer_name}"[:200],
        start=session.start_at, duration_minutes=int(terms.get("duration_minutes", 60)),
        timezone=terms.get("owner_timezone", "UTC"), host_email=terms.get("owner_email"),
    )


def provider_for(c, name: str):
    provider = c.conferencing.get(name)
    if provider is None:
        raise PermanentError("conferencing_unavailable",
                             f"conferencing provider {name!r} is not configured on this service; set its credentials "
                             f"(see the README's environment table) or choose another provider")
    return provider


def provision_conferencing(c, booking_id: str) -> None:
    from ..conferencing.batch import create_meetings

    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "conferencing")
        if booking is None:
            return
        provider = provider_for(c, booking.terms["conferencing_provider"])
        if not getattr(provider, "remote", True):  # test doubles may not subclass the base
            _provision_locally(uow, booking, provider)
            return
        existing = {m.session_id: m for m in uow.db.execute(
            select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]))).scalars()}
        retried = bool(existing)
        for s in booking.sessions:
            if s.id not in existing:
                uow.db.add(Meeting(session_id=s.id, provider=provider.name, status="creating"))
        _mark_step(uow.db, booking_id, "conferencing", "started")
        uow.commit()
        pending = [(s, meeting_request(booking, s)) for s in booking.sessions
                   if s.id not in existing or existing[s.id].status == "creating"]

    made = {}
    if retried:  # a redelivered task: find meetings made before the crash instead of making twice
        for s, req in pending:
            found = provider.find(req)
            if found is not None:
                made[s.id] = found
    todo = [(s, req) for s, req in pending if s.id not in made]
    if todo:
        for (s, _), details in zip(todo, create_meetings(provider, [req for _, req in todo])):
            made[s.id] = details

    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "conferencing")
        if booking is None:  # compensating meanwhile: do not leave what we made behind
            for details in made.values():
                provider.delete(details.external_id)
            return
        for meeting in uow.db.execute(select(Meeting).where(Meeting.session_id.in_(list(made)))).scalars():
            d = made[meeting.session_id]
            meeting.status, meeting.external_id, meeting.join_url = "active", d.external_id, d.join_url
            meeting.password, meeting.dial_in, meeting.host_url = d.password, d.dial_in, d.host_url
            uow.record("meeting.created", booking_id=booking_id, session_id=meeting.session_id,
                       provider=d.provider, meeting_id=d.external_id)
        _advance(uow, booking, "conferencing")
        uow.commit()


def _provision_locally(uow, booking: Booking, provider) -> None:
    """A provider that makes no call out (builtin): nothing can be left behind by a crash, so the
    meetings are made and recorded in one transaction, without the `creating` placeholders.
    (Placeholders an earlier release left for a booking in flight are filled in, not duplicated.)"""
    existing = {m.session_id: m for m in uow.db.execute(
        select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]))).scalars()}
    for s in booking.sessions:
        d = provider.create(meeting_request(booking, s))
        row = existing.get(s.id)
        if row is None:
            row = Meeting(session_id=s.id)
            uow.db.add(row)
        row.provider, row.status, row.external_id, row.join_url = d.provider, "active", d.external_id, d.join_url
        row.password, row.dial_in, row.host_url = d.password, d.dial_in, d.host_url
        uow.record("meeting.created", booking_id=booking.id, session_id=s.id, provider=d.provider,
                   meeting_id=d.external_id)
    _advance(uow, booking, "conferencing")
    uow.commit()


# -- step 4: capture (the pivot), then confirm, notify and plan reminders --------------------------


def capture_payment(c, booking_id: str) -> None:
    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "capture")
        if booking is None:
            return
        if not booking.price_cents:  # no money moves: the pivot is the confirmation alone
            _confirm(c, uow, booking, None)
            return
        key = _key(booking_id, "capture")
        entry = uow.db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).scalar_one_or_none()
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        retried = entry is not None
        if entry is None:
            entry = LedgerEntry(booking_id=booking_id, kind="capture", amount_cents=booking.price_cents,
                                currency=booking.currency, status="pending", idempotency_key=key)
            uow.db.add(entry)
        _mark_step(uow.db, booking_id, "capture", "started")
        uow.commit()
        needs_capture = entry.status != "succeeded"
        intent_id = payment.intent_id if payment else None

    movement = None
    if needs_capture:
        if retried:  # the capture may have gone through before a crash
            summary = c.payments.intent_summary(intent_id)
            if summary.get("status") == "succeeded":
                from ..payments import MoneyMovement

                movement = MoneyMovement(object_id=intent_id, amount_cents=summary.get("amount_received", 0), status="succeeded")
        movement = movement or c.payments.capture(intent_id, idempotency_key=key)
    confirm_booking(c, booking_id, movement)


def confirm_booking(c, booking_id: str, movement=None) -> None:
    """The pivot's transaction: money recorded, booking and sessions confirmed, the consolidated
    emails written to the outbox and the reminders planned, all or nothing."""
    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "capture")
        if booking is not None:
            _confirm(c, uow, booking, movement)


def _confirm(c, uow, booking: Booking, movement) -> None:
    """`confirm_booking`'s work in the caller's transaction, which it commits."""
    from ..notifications import compose

    booking_id, db = booking.id, uow.db
    # Held for the whole transaction: the ORM's identity map is weak, and without this reference
    # the view and the calendar check would each load the owner again (after an autoflush).
    owner = db.get(Owner, booking.owner_id) if booking.owner_id else None  # noqa: F841
    if movement is not None:
        entry = db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == _key(booking_id, "capture"))).scalar_one()
        entry.status, entry.stripe_object_id = "succeeded", movement.object_id
        payment = db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one()
        payment.status = "captured"
        uow.record("payment.captured", booking_id=booking_id, amount=format_amount(booking.price_cents, booking.currency),
                   currency=booking.currency)
    for s in booking.sessions:
        s.status = "confirmed"
    booking.status, booking.saga_step = "confirmed", "done"
    _mark_steps(db, booking_id, ("capture", "notify", "reminders"), "done")
    uow.record("booking.confirmed", booking_id=booking_id, sessions=len(booking.sessions))
    for s in booking.sessions:
        uow.record("session.confirmed", booking_id=booking_id, session_id=s.id, number=s.number,
                   start=to_utc_iso(s.start_at))
    db.flush()
    view = booking_view(db, booking, c.settings)
    queue_emails(uow, compose.booking_confirmed(view), booking_id=booking_id)
    plan_reminders(db, booking, booking.sessions, now=c.clock())
    request_sync(uow, booking_id, booking.owner_id)
    uow.commit()


# -- failure and compensation ---------------------------------------------------------------------


def fail_booking(c, booking_id: str, step: str, exc: ServiceError | Exception) -> None:
    """Record why the saga stopped and start the compensations (once)."""
    code = getattr(exc, "code", "internal_error")
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    with c.uow() as uow:
        booking = uow.db.get(Booking, booking_id)
        if booking is None or booking.status != "pending" or booking.saga_step == "compensate":
            return
        booking.failure = {"step": step, "code": code, "message": message}
        booking.saga_step = "compensate"
        _mark_step(uow.db, booking_id, step, "failed", booking.failure)
        uow.record(f"{step}.failed", booking_id=booking_id, code=code, message=message)
        uow.enqueue(TASK_FOR_STEP["compensate"], booking_id=booking_id)
        uow.commit()


def compensate_booking(c, booking_id: str) -> None:
    """Undo in reverse order: meetings, then the authorization, then the held slots.

    Each undo is idempotent (a meeting already gone or an authorization already cancelled
    counts as done), so the task can run any number of times."""
    from ..notifications import compose

    if _capture_went_through(c, booking_id):
        return  # past the pivot after all: confirmed, never rolled back

    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return
        meetings = [(m.id, m.session_id, m.provider, m.external_id) for m in uow.db.execute(
            select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]),
                                  Meeting.status != "deleted")).scalars()]
        requests = {s.id: meeting_request(booking, s) for s in booking.sessions}
        payment = uow.db.execute(select(Payment.id, Payment.status, Payment.intent_id)
                                 .where(Payment.booking_id == booking_id)).first()

    for meeting_id, session_id, provider_name, external_id in meetings:
        provider = c.conferencing.get(provider_name)
        if external_id is None and provider is not None:
            found = provider.find(requests[session_id])
            external_id = found.external_id if found else None
        refused = None
        if external_id is not None and provider is not None:
            try:
                provider.delete(external_id)
            except PermanentError as exc:  # e.g. credentials revoked: the rest must still be undone
                refused = exc
        with c.uow() as uow:
            row = uow.db.get(Meeting, meeting_id)
            if refused is None:
                row.status, row.deleted_at = "deleted", c.clock()
                uow.record("compensation.meeting_deleted", booking_id=booking_id, session_id=session_id,
                           meeting_id=external_id)
            else:
                # Left at the provider: `doctor` lists orphaned meetings for someone to remove by hand.
                row.status = "orphaned"
                uow.record("compensation.meeting_delete_failed", booking_id=booking_id, session_id=session_id,
                           meeting_id=external_id, code=refused.code, message=refused.message)
            uow.commit()

    if payment is not None and payment.status in ("authorizing", "authorized", "failed"):
        intent_id = payment.intent_id
        if intent_id is None and payment.status == "authorizing":
            found = c.payments.find_authorization(booking_id, _key(booking_id, "authorize"))
            intent_id = found.intent_id if found else None
        if intent_id is not None:
            c.payments.cancel_authorization(intent_id, idempotency_key=_key(booking_id, "cancel"))
        with c.uow() as uow:
            row = uow.db.get(Payment, payment.id)
            row.status = "cancelled"
            if intent_id:
                uow.record("compensation.authorization_cancelled", booking_id=booking_id, intent=intent_id)
            uow.commit()

    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return
        for s in booking.sessions:
            s.status = "released"
        uow.record("compensation.slots_released", booking_id=booking_id, sessions=len(booking.sessions))
        booking.status, booking.saga_step = "failed", "done"
        _mark_step(uow.db, booking_id, "compensate", "done")
        uow.record("booking.failed", booking_id=booking_id, **(booking.failure or {}))
        uow.db.flush()
        queue_emails(uow, compose.booking_failed(booking_view(uow.db, booking, c.settings)), booking_id=booking_id)
        uow.commit()


# -- manual booking mode: approve, decline, expire ------------------------------------------------


def approve_booking(c, booking_id: str, actor: str = "admin") -> str:
    """Run the rest of the workflow for a request awaiting approval. Idempotent: approving a
    booking that is already on its way or confirmed changes nothing."""
    with c.uow() as uow:
        booking = load_awaiting(uow, booking_id, allow=("pending", "confirmed"))
        if booking.status != "awaiting_approval":
            return booking.status
        booking.status, booking.expires_at = "pending", None
        _mark_step(uow.db, booking_id, "approval", "done")
        uow.record("booking.approved", booking_id=booking_id, actor=actor)
        booking.saga_step = _next_step(booking, None)
        uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking_id)
        uow.commit()
        return "pending"


def decline_booking(c, booking_id: str, reason: str | None = None, actor: str = "admin",
                    code: str = "declined") -> str:
    """Release a request's slot and tell the customer. Idempotent for a booking already declined."""
    from ..notifications import compose

    with c.uow() as uow:
        booking = load_awaiting(uow, booking_id, allow=("cancelled",))
        if booking.status != "awaiting_approval":
            return booking.status
        for s in booking.sessions:
            s.status, s.cancelled_at, s.cancel_reason = "cancelled", c.clock(), reason
        message = reason or ("the request expired before the owner decided" if code == "approval_expired"
                             else "the owner declined the request")
        booking.status, booking.saga_step, booking.expires_at = "cancelled", "done", None
        booking.failure = {"step": "approval", "code": code, "message": message}
        _mark_step(uow.db, booking_id, "approval", "failed", booking.failure)
        uow.record("booking.declined", booking_id=booking_id, actor=actor, code=code, reason=reason)
        uow.db.flush()
        view = booking_view(uow.db, booking, c.settings)
        queue_emails(uow, compose.booking_declined(view, message, expired=code == "approval_expired"),
                     booking_id=booking_id)
        uow.commit()
        return "cancelled"


def load_awaiting(uow, booking_id: str, allow: tuple[str, ...]) -> Booking:
    """The booking, locked for this transaction (like `lifecycle.access.lock_booking`, so an
    approval, a decline and a customer's withdrawal decide one after the other), when it awaits
    approval or is in one of the `allow`ed states (an earlier, repeated decision); otherwise
    NotFound or OperationFailed `not_awaiting_approval`."""
    from ..errors import NotFound

    booking = uow.db.execute(select(Booking).where(Booking.id == booking_id).with_for_update()
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if booking is None:
        raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id")
    if booking.status != "awaiting_approval" and booking.status not in allow:
        raise OperationFailed("not_awaiting_approval",
                              f"booking {booking_id} is {booking.status}{how_request_ended(booking)}, not awaiting approval; only requests made in manual booking mode can be approved or declined")
    return booking


def expire_approval_requests(c) -> int:
    """Decline every request whose approval window has passed (a beat task)."""
    with c.session_factory() as db:
        due = [b for (b,) in db.execute(select(Booking.id).where(
            Booking.status == "awaiting_approval", Booking.expires_at <= c.clock()))]
    for booking_id in due:
        decline_booking(c, booking_id, actor="system", code="approval_expired")
    return len(due)


def _capture_went_through(c, booking_id: str) -> bool:
    """Before undoing anything: did a capture whose answer was lost reach Stripe? Then the booking
    is past its pivot and is confirmed instead (a transient error here retries the compensation)."""
    from ..payments import MoneyMovement

    with c.session_factory() as db:
        entry = db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == _key(booking_id, "capture"),
                                                     LedgerEntry.status == "pending")).scalar_one_or_none()
        payment = db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        if entry is None or payment is None or not payment.intent_id:
            return False
        intent_id = payment.intent_id
    summary = c.payments.intent_summary(intent_id)
    if summary.get("status") != "succeeded":
        return False
    with c.uow() as uow:
        booking = _load_at_step(uow, booking_id, "compensate")
        if booking is None:
            return False
        uow.record("compensation.cancelled", booking_id=booking_id, reason="the capture had reached Stripe",
                   failure=booking.failure)
        booking.saga_step, booking.failure = "capture", None
        uow.commit()
    movement = MoneyMovement(object_id=intent_id, amount_cents=summary.get("amount_received", 0), status="succeeded")
    confirm_booking(c, booking_id, movement)
    return True


def resume_stalled(c, older_than: timedelta) -> int:
    """Re-enqueue the current step of every pending booking that has not moved for a while
    (a lost message, a broker restart). Steps are idempotent, so a duplicate does no harm."""
    cutoff = c.clock() - older_than
    with c.uow() as uow:
        stalled = uow.db.execute(
            select(Booking.id, Booking.saga_step).where(Booking.status == "pending", Booking.updated_at < cutoff)
        ).all()
        for booking_id, step in stalled:
            if step in TASK_FOR_STEP:
                uow.enqueue(TASK_FOR_STEP[step], booking_id=booking_id)
                uow.db.query(Booking).filter(Booking.id == booking_id).update({"updated_at": c.clock()})
        uow.commit()
    return len(stalled)


__all__ = [
    "authorize_payment", "capture_payment", "compensate_booking", "confirm_booking", "fail_booking",
    "provision_conferencing", "record_rejected", "resume_stalled", "submit_booking", "OperationFailed",
]
