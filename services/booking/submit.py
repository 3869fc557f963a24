"""Step 1 of the saga: validate a request and hold all its slots, or record why it was refused."""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from models import Booking, Customer, Session, db_now
from ..availability import to_utc_iso
from ..calendar.events import calendar_uid
from ..errors import Conflict, InvalidInput, ServiceError
from ..money import allocate
from ..notifications import compose
from ..notifications.booking_view import booking_view
from ..notifications.outbox import queue_emails
from ..scheduling import resolve_offering
from . import intake
from ..payments import payment_unavailable, payments_available
from .approval import await_approval
from .at_once import NotAtOnce, confirm_at_hold, local_provider
from .ids import KEY_SEPARATOR, booking_id_for, new_session_id
from .request import BookingPlan, BookingRequest as RequestModel, conflicting_slot, parse_request, plan_booking, slot_taken
from .saga import TASK_FOR_STEP, mark_step, next_step, upsert

log = logging.getLogger("sessionpack.workflow")


def submit_booking(c, data: Any, *, key: str | None = None, at_once: bool = True) -> str | None:
    """Validate a request and hold all its slots, or record why it was refused.

    Returns the booking id (None for a request that cannot be answered: no usable request_id, or
    one already used for a different request, `request_id_reused`, recorded as
    `request.refused`). The same request always gives the same, single booking; the request is
    claimed in the intake (`booking_requests`) in the transaction that holds it. A booking whose
    remaining steps make no call out is confirmed in that transaction too (`at_once`, see
    services/booking/at_once.py); if that part fails, everything is rolled back and the request
    is held again for the step-by-step saga.

    `key`: the key the intake stored the request under (`ids.request_key`; `start_booking` passes
    it), else the request_id itself (a request straight from the broker).
    """
    request_id = data.get("request_id") if isinstance(data, dict) else None
    try:
        request, starts = parse_request(data)
    except InvalidInput as exc:
        if isinstance(request_id, str) and 0 < len(request_id) <= 200 and "\x00" not in request_id:
            if key is None and KEY_SEPARATOR in request_id:
                # No valid request_id holds the separator of a page-scoped key (`<page>/<id>`):
                # recorded under it, this refusal would take that page's request_id (its
                # frontend's first use of it answered request_id_reused). Refused, no booking.
                intake.record_reused(c, data, exc)
                return None
            return record_rejected(c, data, exc, key=key)
        log.warning("booking request without a usable request_id refused: %s", exc.code)
        return None

    body = intake.canonical_request(request, starts)
    fp = intake.fingerprint(body)
    key = key or request.request_id
    booking_id = booking_id_for(key)
    try:
        with c.uow() as uow:
            if intake.check_repeat(uow.db, key, booking_id, fp, body) is not None:
                return booking_id  # a repeated request: the first one made the booking
            try:
                plan = plan_booking(uow.db, request, starts, now=c.clock(), extra_busy=c.busy_source)
                _check_payments(c, plan)
            except ServiceError as exc:
                uow.db.rollback()
                return record_rejected(c, data, exc, parsed=(request, starts), key=key)
            try:
                intake.claim_request(uow.db, key, booking_id, fp)
                _hold(c, uow, plan, booking_id, key, at_once=at_once)
                uow.commit()
                return booking_id
            except IntegrityError:
                # PostgreSQL's exclusion constraint refused an overlap with a concurrent booking, or
                # the same request_id won a race with itself (the intake's unique key).
                uow.db.rollback()
        with c.uow() as uow:
            if intake.check_repeat(uow.db, key, booking_id, fp, body) is not None:
                return booking_id
            slot = conflicting_slot(uow.db, plan)
    except Conflict as exc:
        intake.record_reused(c, data, exc)
        return None
    except NotAtOnce as exc:  # rolled back when the unit of work ended
        log.warning("booking %s: confirming at once failed (%s); held for the step-by-step saga", booking_id, exc)
        return submit_booking(c, data, key=key, at_once=False)
    return record_rejected(c, data, slot_taken(slot), parsed=(request, starts), key=key)


def start_booking(c, request_id: str) -> str | None:
    """The body of `sessionpack.start_booking`: submit the request the intake stored (the CLI,
    the HTTP API). A repeat, or a request already taken, changes nothing. Returns the booking id,
    or None when no such request waits."""
    body = intake.queued_body(c, request_id)
    if body is None:
        return None
    return submit_booking(c, body, key=request_id)


def _names(page, et, owner) -> dict[str, Any]:
    """Who and what a request is for, as emails name them."""
    return {
        "event_name": et.name, "page_name": page.name, "page_timezone": page.timezone,
        "owner_name": owner.name, "owner_email": owner.email, "owner_timezone": owner.timezone,
        "duration_minutes": et.duration_minutes, "sessions_per_booking": et.sessions_per_booking,
    }


def _check_payments(c, plan: BookingPlan) -> None:
    """A price on a service that takes no payments is refused here, before anything is held:
    otherwise the booking would hold its slots until the authorize step failed."""
    et = plan.offering.event_type
    if et.price_cents and not payments_available(c):
        raise payment_unavailable(f"{plan.offering.page.slug}/{et.slug or '-'}")


def _terms(plan: BookingPlan) -> dict[str, Any]:
    """Everything the booking is made under, frozen now (config may change later)."""
    page, et, owner = plan.offering.page, plan.offering.event_type, plan.offering.owner
    return {
        **_names(page, et, owner),
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
    insert = upsert(db)
    values = {"email": customer.email, "name": customer.name, "timezone": customer.timezone}
    now = db_now(db)
    return db.execute(insert(Customer).values(**values, updated_at=now).on_conflict_do_update(
        index_elements=["email"], set_={"name": customer.name, "timezone": customer.timezone, "updated_at": now})
        .returning(Customer.id)).scalar_one()


def _hold(c, uow, plan: BookingPlan, booking_id: str, key: str, *, at_once: bool = True) -> Booking:
    """The booking and its held sessions; then either the whole booking confirmed in this same
    transaction (`confirm_at_hold`), or the saga's next step asked for (or, in manual mode, the
    owner's approval)."""
    db, request, et = uow.db, plan.request, plan.offering.event_type
    customer_id = _upsert_customer(db, request.customer)
    price = et.price_cents or 0
    booking = Booking(
        id=booking_id, request_id=key, status="pending", saga_step="authorize",
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
        # Through the collection, so `booking.sessions` is known without loading it back.
        booking.sessions.append(Session(
            id=session_id, booking_id=booking_id, number=number, owner_id=booking.owner_id, status="held",
            start_at=start, end_at=start + plan.duration, block_start=block[0], block_end=block[1],
            relative_cost_cents=cost, uid=calendar_uid(session_id), sequence=0,
        ))
        uow.record("session.held", booking_id=booking_id, session_id=session_id, number=number, start=to_utc_iso(start))
    provider = local_provider(c, et) if at_once else False
    if provider is not False:
        # One flush at the pivot writes every row in its final state (PostgreSQL checks the
        # exclusion constraint there; an overlap raises IntegrityError as below).
        confirm_at_hold(c, uow, booking, provider)
        return booking
    db.flush()  # PostgreSQL checks the exclusion constraint here
    mark_step(db, booking_id, "hold", "done")
    if et.booking_mode == "manual":
        await_approval(uow, booking, c.clock(), c.settings)
        return booking
    booking.saga_step = next_step(booking, None)
    uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking_id)
    return booking


def record_rejected(c, data: dict, exc: ServiceError, *,
                    parsed: tuple[RequestModel, list] | None = None, key: str | None = None) -> str | None:
    """A refused request becomes a `failed` booking that holds nothing, so `show` can say why.

    For a valid request (`parsed`, from `parse_request`: refused by the catalog or the slots, e.g. a slot taken
    by another request) the customer is emailed once that we could not book, why, and that
    nothing was charged. Returns the booking id, or None when the request_id belongs to a
    different request (`request_id_reused`, recorded as `request.refused`)."""
    request_id = data["request_id"]
    key = key or request_id
    booking_id = booking_id_for(key)
    customer = data.get("customer") if isinstance(data.get("customer"), dict) else {}
    request = parsed[0] if parsed is not None else None
    body = intake.canonical_request(*parsed) if parsed is not None else None
    fp = intake.fingerprint(body if body is not None else data)

    def text(value: Any, limit: int) -> str:
        return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""

    try:
        with c.uow() as uow:
            if intake.check_repeat(uow.db, key, booking_id, fp, body) is not None:
                return booking_id
            intake.claim_request(uow.db, key, booking_id, fp)
            page = data.get("booking_page")
            names = _offering_names(uow.db, request) if request is not None else {}
            booking = Booking(
                id=booking_id, request_id=key, status="failed", saga_step="done",
                failure={"step": "validate", "code": exc.code, "message": exc.message},
                page_slug=text(page, 64) or None, event_type_slug=text(data.get("event_type"), 64) or None,
                customer_name=text(customer.get("name"), 200), customer_email=text(customer.get("email"), 320),
                customer_timezone=text(customer.get("timezone"), 64) or "UTC", terms=names,
            )
            if request is not None:  # validated: the normalised address and zone
                booking.customer_email, booking.customer_timezone = request.customer.email, request.customer.timezone
            uow.db.add(booking)
            uow.record("booking.requested", booking_id=booking_id, actor="customer", request_id=request_id)
            uow.record("booking.failed", booking_id=booking_id, step="validate", code=exc.code, message=exc.message)
            if names:
                # The customer always hears: one "we could not book" email (its id is the booking's).
                uow.db.flush()
                queue_emails(uow, compose.booking_failed(booking_view(uow.db, booking, c.settings)),
                             booking_id=booking_id)
            try:
                uow.commit()
            except IntegrityError:
                pass  # recorded concurrently by a duplicate of the same request
    except Conflict as exc_reused:
        intake.record_reused(c, data, exc_reused)
        return None
    return booking_id


def _offering_names(db, request: RequestModel) -> dict[str, Any]:
    """The names a refused request's email needs, when its page and event type exist."""
    try:
        offering = resolve_offering(db, request.booking_page, request.event_type)
    except ServiceError:
        return {}
    return _names(offering.page, offering.event_type, offering.owner)
