"""The saga's forward steps: authorize the package price, one meeting per session, capture.

Each reads what it needs in one transaction, calls the provider outside any transaction, and
records the outcome in another, so a crash between them is recovered by the redelivered task
(the gateway and the providers find what a lost call made, by its idempotency key or request).
"""
from __future__ import annotations

from sqlalchemy import select

from models import Booking, LedgerEntry, Meeting, Payment
from ..conferencing import meeting_request, provider_for
from ..conferencing.batch import create_meetings
from ..money import format_amount
from ..payments import MoneyMovement, payment_unavailable, payments_available
from .confirm import confirm_booking, confirm_within
from .saga import advance, load_at_step, mark_step, money_key


# -- step 2: authorize the package price ----------------------------------------------------------


def authorize_payment(c, booking_id: str) -> None:
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "authorize")
        if booking is None:
            return
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        if payment is None:
            if not payments_available(c):
                # Held before the gateway went away: fail before anything reaches the outside
                # world, so the compensation has nothing to undo and needs no gateway.
                raise payment_unavailable(f"booking {booking_id}")
            payment = Payment(booking_id=booking_id, amount_cents=booking.price_cents, currency=booking.currency,
                              payment_method=booking.payment_method, status="authorizing")
            uow.db.add(payment)
        mark_step(uow.db, booking_id, "authorize", "started")
        uow.commit()
        amount, currency, method, email = booking.price_cents, booking.currency, booking.payment_method, booking.customer_email
        intent_id = payment.intent_id

    if intent_id is None:
        # The gateway recovers an authorization that reached Stripe before a crash (by the key in
        # its metadata), so a retried step never authorizes twice.
        auth = c.payments.authorize(amount_cents=amount, currency=currency, payment_method=method,
                                    email=email, booking_id=booking_id, idempotency_key=money_key(booking_id, "authorize"))
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "authorize")
        if booking is None:
            return
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one()
        if payment.intent_id is None:
            payment.intent_id, payment.stripe_customer_id = auth.intent_id, auth.customer_id
        payment.status = "authorized"
        uow.record("payment.authorized", booking_id=booking_id, amount=format_amount(amount, currency), currency=currency,
                   intent=payment.intent_id)
        advance(uow, booking, "authorize")
        uow.commit()


# -- step 3: one meeting per session --------------------------------------------------------------


def provision_conferencing(c, booking_id: str) -> None:
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "conferencing")
        if booking is None:
            return
        provider = provider_for(c, booking.terms["conferencing_provider"])
        if not provider.remote:
            _provision_locally(uow, booking, provider)
            return
        existing = {m.session_id: m for m in uow.db.execute(
            select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]))).scalars()}
        retried = bool(existing)
        for s in booking.sessions:
            if s.id not in existing:
                uow.db.add(Meeting(session_id=s.id, provider=provider.name, status="creating"))
        mark_step(uow.db, booking_id, "conferencing", "started")
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
        booking = load_at_step(uow, booking_id, "conferencing")
        if booking is None:  # compensating meanwhile: do not leave what we made behind
            for details in made.values():
                provider.delete(details.external_id)
            return
        for meeting in uow.db.execute(select(Meeting).where(Meeting.session_id.in_(list(made)))).scalars():
            _fill_meeting(uow, booking_id, meeting, made[meeting.session_id])
        advance(uow, booking, "conferencing")
        uow.commit()


def _provision_locally(uow, booking: Booking, provider) -> None:
    """A provider that makes no call out (builtin): nothing can be left behind by a crash, so the
    meetings are made and recorded in one transaction, without the `creating` placeholders.
    (Placeholders an earlier release left for a booking in flight are filled in, not duplicated.)"""
    existing = {m.session_id: m for m in uow.db.execute(
        select(Meeting).where(Meeting.session_id.in_([s.id for s in booking.sessions]))).scalars()}
    make_local_meetings(uow, booking, provider, existing)
    advance(uow, booking, "conferencing")
    uow.commit()


def make_local_meetings(uow, booking: Booking, provider, existing: dict[str, Meeting] | None = None) -> None:
    """One meeting per session from a provider that makes no call out (`remote` False), made and
    recorded in the caller's transaction; `existing` rows (by session id) are filled in."""
    existing = existing or {}
    for s in booking.sessions:
        d = provider.create(meeting_request(booking, s))
        row = existing.get(s.id)
        if row is None:
            row = Meeting(session_id=s.id, session=s)  # `session`: written after its new session
            uow.db.add(row)
        row.provider = d.provider
        _fill_meeting(uow, booking.id, row, d)


def _fill_meeting(uow, booking_id: str, row: Meeting, d) -> None:
    """A made meeting's details onto its row, and its `meeting.created` event."""
    row.status, row.external_id, row.join_url = "active", d.external_id, d.join_url
    row.password, row.dial_in, row.host_url = d.password, d.dial_in, d.host_url
    uow.record("meeting.created", booking_id=booking_id, session_id=row.session_id, provider=d.provider,
               meeting_id=d.external_id)


# -- step 4: capture (the pivot), then confirm, notify and plan reminders --------------------------


def capture_payment(c, booking_id: str) -> None:
    with c.uow() as uow:
        booking = load_at_step(uow, booking_id, "capture")
        if booking is None:
            return
        if not booking.price_cents:  # no money moves: the pivot is the confirmation alone
            confirm_within(c, uow, booking, None)
            uow.commit()
            return
        key = money_key(booking_id, "capture")
        entry = uow.db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == key)).scalar_one_or_none()
        payment = uow.db.execute(select(Payment).where(Payment.booking_id == booking_id)).scalar_one_or_none()
        retried = entry is not None
        if entry is None:
            entry = LedgerEntry(booking_id=booking_id, kind="capture", amount_cents=booking.price_cents,
                                currency=booking.currency, status="pending", idempotency_key=key)
            uow.db.add(entry)
        mark_step(uow.db, booking_id, "capture", "started")
        uow.commit()
        needs_capture = entry.status != "succeeded"
        intent_id = payment.intent_id if payment else None

    movement = None
    if needs_capture:
        if retried:  # the capture may have gone through before a crash
            summary = c.payments.intent_summary(intent_id)
            if summary.get("status") == "succeeded":
                movement = MoneyMovement(object_id=intent_id, amount_cents=summary.get("amount_received", 0), status="succeeded")
        movement = movement or c.payments.capture(intent_id, idempotency_key=key)
    confirm_booking(c, booking_id, movement)
