"""Intake: persist, then publish. Every entry our code owns (the CLI's `book`, the HTTP API's
`POST /api/v1/bookings`) answers "queued" only after the request is committed.

`accept_booking_request` validates a request with the worker's rules and error codes, then
stores it (a `booking_requests` row keyed by its request_id) together with a task-outbox row
that publishes `sessionpack.start_booking` (the request id only: the worker reads the request
from the row), in one transaction. The task outbox hands it to the broker after the commit; the
stalled-work sweep (`republish_unclaimed`, beat) publishes again every request that no booking
has picked up within a grace period, so a broker that forgets a message loses nothing; the
booking id derived from the request_id makes a republish harmless.

Idempotency is Stripe's: the same request_id with the same body answers the same booking; with a
different body it is refused with `request_id_reused` (409 over HTTP), never answered with
someone else's booking. The body is compared by the fingerprint of its canonical form
(`fingerprint`): validated, emails normalised, slots in UTC and in order.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Activity, Booking, BookingRequest, TaskOutbox
from ..availability import to_utc_iso
from ..errors import Conflict, InvalidInput
from ..money import format_amount
from .ids import MAX_KEY_LENGTH, booking_id_for, public_request_id, request_key
from .request import BookingRequest as RequestModel, parse_request, plan_booking

log = logging.getLogger("sessionpack.intake")

START_BOOKING = "sessionpack.start_booking"
# Requests the sweep republishes in one tick (oldest first); the rest wait for the next tick.
REPUBLISH_BATCH = 200


class Accepted(NamedTuple):
    """The answer to an accepted request: `created` is False for a repeat of a stored request
    (same request_id, same body), whose booking's current status is given."""

    booking_id: str
    status: str
    created: bool


# -- the canonical body and its fingerprint --------------------------------------------------------


def canonical_request(request: RequestModel, starts: Sequence[datetime]) -> dict[str, Any]:
    """The request as stored and compared: validated values only, optional fields left out when
    empty, slots as UTC instants in time order (the order and the offsets they were written in
    do not change the booking)."""
    body = request.model_dump(mode="json", exclude_none=True)
    body["slots"] = [to_utc_iso(s) for s in sorted(starts)]
    return body


def fingerprint(body: Any) -> str:
    """sha256 (hex) of a body's canonical JSON (keys sorted, no spaces)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def reused(request_id: str) -> Conflict:
    return Conflict(
        "request_id_reused",
        f"request_id {request_id!r} was already used for a different booking request; the same request_id "
        "answers only the very same request, so give this one a new request_id")


def _same_as_booking(booking: Booking, body: dict[str, Any]) -> bool:
    """For a booking made before the intake stored fingerprints: the same customer, page, event
    type and (when it held any) times."""
    if (booking.customer_email, booking.page_slug, booking.event_type_slug or None) != (
            body["customer"]["email"], body["booking_page"], body.get("event_type")):
        return False
    return not booking.sessions or sorted(to_utc_iso(s.start_at) for s in booking.sessions) == body["slots"]


def check_repeat(db, request_id: str, booking_id: str, fp: str, body: dict[str, Any] | None) -> Booking | None:
    """The worker's check of a request_id it may have seen: raises `request_id_reused` when the
    request stored under it (the intake row, else the booking's details) differs; returns the
    booking already made for it, or None. `body` is None for a request that is not valid."""
    row = db.get(BookingRequest, request_id)
    booking = db.get(Booking, booking_id)
    if row is not None and row.fingerprint != fp:
        raise reused(request_id)
    if row is None and booking is not None and (body is None or not _same_as_booking(booking, body)):
        raise reused(request_id)
    return booking


def _answer_repeat(db, request_id: str, booking_id: str, fp: str, body: dict[str, Any]) -> str | None:
    """The status to answer a repeated request_id with, None for a new one; `request_id_reused`
    when the stored request differs."""
    # One round trip for the common case, a new request (neither row exists): the stored
    # fingerprint and the booking's status as two scalar subqueries, no ORM objects loaded.
    stored_fp, status = db.execute(select(
        select(BookingRequest.fingerprint).where(BookingRequest.request_id == request_id).scalar_subquery(),
        select(Booking.status).where(Booking.id == booking_id).scalar_subquery())).one()
    if stored_fp is not None:
        if stored_fp != fp:
            raise reused(request_id)
        return status or "pending"
    if status is not None:
        if not _same_as_booking(db.get(Booking, booking_id), body):
            raise reused(request_id)
        return status
    return None


def record_reused(c, data: Any, exc: Conflict, *, task: str = "sessionpack.submit_booking") -> None:
    """A message that reused a request_id is refused: `request.refused` in the activity stream
    (no booking: the one under that request_id is someone else's), and nothing else changes."""
    page = data.get("booking_page") if isinstance(data, dict) else None
    with c.uow() as uow:
        uow.record("request.refused", booking_id=None, actor="system", task=task,
                   request_id=data.get("request_id") if isinstance(data, dict) else None,
                   booking_page=page if isinstance(page, str) else None, code=exc.code, message=exc.message)
        uow.commit()
    log.warning("booking request refused: %s", exc.code)


# -- accepting a request (the CLI, the HTTP API) ---------------------------------------------------


def accept_booking_request(c, data: Any, *, source: str = "api", scope: str | None = None) -> Accepted:
    """Validate a booking request and store it with the task that publishes it, in one committed
    transaction; the task outbox sends it after the commit (or the sweep, later).

    Raises what the worker would record, with the same codes: InvalidInput (`invalid_request`,
    `unknown_booking_page`, `wrong_session_count`, `payment_method_required`, ...; exit 2, HTTP
    422), OperationFailed for a slot that is not free (`slot_unavailable`, `limit_reached`, ...;
    exit 1), Conflict `request_id_reused` (HTTP 409). The slots are checked against our bookings
    and rules here; owners' external calendars are the worker's to ask (no call leaves the process
    that answers). Nothing is stored when the request is refused, so it may be corrected and
    sent again with the same request_id, as with Stripe.

    `scope` (an API key scoped to pages passes the request's page): the request_id is stored
    under `<page>/<request_id>` (`ids.request_key`), a namespace of that page's own, so the key
    can neither learn that another page used a request_id nor take one another page will use.
    """
    request, starts = parse_request(data)
    body = canonical_request(request, starts)
    fp = fingerprint(body)
    key = request_key(request.request_id, scope)
    if len(key) > MAX_KEY_LENGTH:
        room = MAX_KEY_LENGTH - len(key) + len(request.request_id)
        raise InvalidInput("invalid_request", f"request_id: at most {room} characters with a key scoped to booking "
                                              f"page {scope!r} (it is stored under the page's name); use a shorter one")
    booking_id = booking_id_for(key)
    try:
        with c.uow() as uow:
            status = _answer_repeat(uow.db, key, booking_id, fp, body)
            if status is not None:
                return Accepted(booking_id, status, False)
            plan = plan_booking(uow.db, request, starts, now=c.clock())
            et, now = plan.offering.event_type, c.clock()
            uow.db.add(BookingRequest(
                request_id=key, booking_id=booking_id, fingerprint=fp, source=source,
                state="queued", body=body, price_cents=et.price_cents or 0, currency=et.currency or "USD",
                publishes=1, created_at=now, published_at=now))
            uow.record("request.accepted", booking_id=booking_id, actor="customer",
                       request_id=request.request_id, source=source, sessions=len(starts))
            # The publication's task-outbox row is written already claimed (dispatched_at set)
            # and sent by this process right after the commit: no second transaction (a pool
            # checkout, its ping, an UPDATE and a COMMIT) just to claim it, as uow.enqueue's
            # dispatch would. A send the broker refuses releases the row to the outbox sweep (and
            # `publish_again`); a process that dies between commit and send leaves the request to
            # the request sweep (`republish_unclaimed`), which publishes it after its grace.
            publication = TaskOutbox(task_name=START_BOOKING, kwargs={"request_id": key},
                                     dispatched_at=now if c.celery_app is not None else None)
            uow.db.add(publication)
            uow.db.flush()
            claimed = [(publication.id, START_BOOKING, {"request_id": key})] if c.celery_app is not None else []
            uow.commit()
    except IntegrityError:
        # The same request_id accepted concurrently (or straight from the broker): answer as a repeat.
        with c.read() as db:
            status = _answer_repeat(db, key, booking_id, fp, body)
        if status is None:
            raise
        return Accepted(booking_id, status, False)
    if claimed:
        c.send_claimed(claimed)
    return Accepted(booking_id, "pending", True)


def _waiting_publications(db, booking_id: str) -> list[int]:
    """Task-outbox rows of an accepted request's publication that have not reached the broker."""
    request_id = db.execute(select(BookingRequest.request_id)
                            .where(BookingRequest.booking_id == booking_id)).scalar_one_or_none()
    if request_id is None:
        return []
    return list(db.execute(select(TaskOutbox.id).where(
        TaskOutbox.task_name == START_BOOKING, TaskOutbox.dispatched_at.is_(None),
        TaskOutbox.kwargs["request_id"].as_string() == request_id)).scalars())


def published(c, booking_id: str) -> bool:
    """Whether an accepted request's first publication reached the broker (False: it waits in
    the task outbox for the sweep, e.g. while the broker is down)."""
    with c.read() as db:
        return not _waiting_publications(db, booking_id)


def publish_again(c, booking_id: str) -> bool:
    """Send an accepted request's publication that still waits in the task outbox (the broker
    refused it when it was accepted); True once nothing waits. A caller that waits for its
    booking (`sessionpack book --wait`) calls it, so its request does not depend on beat's
    outbox sweep, which a setup without beat (the demo) does not run."""
    with c.read() as db:
        waiting = _waiting_publications(db, booking_id)
    if waiting:
        c.dispatch_tasks(waiting)
    return published(c, booking_id)


# -- the worker's side ---------------------------------------------------------------------------


def queued_body(c, request_id: str) -> dict[str, Any] | None:
    """The stored request that `sessionpack.start_booking` names, None when there is none to
    start (unknown id, or its booking already holds it). `submit.start_booking` submits it."""
    with c.read() as db:
        row = db.get(BookingRequest, request_id)
        return dict(row.body) if row is not None and row.body is not None else None


def claim_request(db, request_id: str, booking_id: str, fp: str, *, source: str = "broker") -> None:
    """In the worker's transaction that makes the booking: mark the stored request taken, or
    record one that came straight from the broker. Raises `request_id_reused` when the request_id
    belongs to a request with another body (the unique key serialises concurrent claims: the
    loser's transaction fails with IntegrityError)."""
    row = db.get(BookingRequest, request_id)
    if row is None:
        db.add(BookingRequest(request_id=request_id, booking_id=booking_id, fingerprint=fp, source=source,
                              state="taken", body=None))
        return
    if row.fingerprint != fp:
        raise reused(request_id)
    row.state, row.body = "taken", None


def stored_fingerprint(db, request_id: str) -> str | None:
    row = db.get(BookingRequest, request_id)
    return row.fingerprint if row is not None else None


# -- the sweep -----------------------------------------------------------------------------------


def republish_unclaimed(c, grace: timedelta, limit: int = REPUBLISH_BATCH) -> dict[str, int]:
    """Publish again every accepted request that no booking has picked up `grace` after it was
    last published (the broker lost it, or the worker that received it died before starting it);
    mark the ones a booking holds as taken. Returns {"republished", "taken"}."""
    now = c.clock()
    with c.uow() as uow:
        rows = uow.db.execute(select(BookingRequest).where(
            BookingRequest.state == "queued", BookingRequest.published_at < now - grace,
        ).order_by(BookingRequest.published_at).limit(limit)).scalars().all()
        if not rows:
            return {"republished": 0, "taken": 0}
        made = set(uow.db.execute(select(Booking.id).where(Booking.id.in_([r.booking_id for r in rows]))).scalars())
        # A publication still waiting in the task outbox (the broker was down) is the outbox
        # sweep's to send: another one would only pile up beside it.
        unsent = set(uow.db.execute(select(TaskOutbox.kwargs["request_id"].as_string()).where(
            TaskOutbox.dispatched_at.is_(None), TaskOutbox.task_name == START_BOOKING)).scalars())
        republished = 0
        for row in rows:
            if row.booking_id in made:
                row.state, row.body = "taken", None
                continue
            if row.request_id in unsent:
                continue
            row.published_at, row.publishes = now, row.publishes + 1
            uow.enqueue(START_BOOKING, request_id=row.request_id)
            republished += 1
            log.warning("booking request %s (booking %s) was not picked up %ss after it was published; "
                        "publishing it again (publication %d)", row.request_id, row.booking_id,
                        int(grace.total_seconds()), row.publishes)
        uow.commit()
    return {"republished": republished, "taken": sum(1 for r in rows if r.booking_id in made)}


def waiting(db, now: datetime, older_than: timedelta) -> tuple[int, str | None]:
    """For `doctor`: how many accepted requests no booking has picked up though they were first
    accepted more than `older_than` ago, and the oldest one's request_id."""
    from sqlalchemy import func

    stuck = (BookingRequest.state == "queued", BookingRequest.created_at < now - older_than)
    count = db.execute(select(func.count()).select_from(BookingRequest).where(*stuck)).scalar_one()
    oldest = db.execute(select(BookingRequest.request_id).where(*stuck)
                        .order_by(BookingRequest.created_at).limit(1)).scalar_one_or_none()
    return count, oldest


# -- what `show` answers ---------------------------------------------------------------------------


def pending_object(db, row: BookingRequest) -> dict[str, Any]:
    """The booking object of an accepted request no worker has started yet: `pending`, no
    sessions held yet, the request's details and its activity (`request.accepted`)."""
    body = row.body or {}
    customer = body.get("customer", {})
    cur = row.currency
    activity = db.execute(select(Activity).where(Activity.booking_id == row.booking_id)
                          .order_by(Activity.id.desc())).scalars()
    from .views import activity_entry

    return {
        "id": row.booking_id, "request_id": public_request_id(row.request_id), "status": "pending", "failure": None,
        "booking_page": body.get("booking_page"), "event_type": body.get("event_type"),
        "customer": {"name": customer.get("name"), "email": customer.get("email"),
                     "timezone": customer.get("timezone", "UTC")},
        "price": format_amount(row.price_cents, cur), "currency": cur,
        "paid": format_amount(0, cur), "refunded": format_amount(0, cur), "fees": format_amount(0, cur),
        "sessions": [],
        "activity": [{k: v for k, v in activity_entry(a).items() if k != "booking_id"} for a in activity],
    }


def find_booking_object(db, booking_id: str, settings) -> dict[str, Any] | None:
    """The contract's booking object for `show` and `GET /api/v1/bookings/{id}`: the booking's,
    or `pending` for an accepted request not started yet; None when the id is unknown."""
    from .views import booking_object

    booking = db.get(Booking, booking_id)
    if booking is not None:
        return booking_object(db, booking, settings)
    row = db.execute(select(BookingRequest).where(BookingRequest.booking_id == booking_id)).scalar_one_or_none()
    if row is not None and row.state == "queued":
        return pending_object(db, row)
    return None
