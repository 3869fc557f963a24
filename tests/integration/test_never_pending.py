"""A booking never hangs in `pending` (issue 14): a price on a service without a payment gateway is
refused at intake, a compensation of a step that never reached the outside world needs no gateway,
a compensation that keeps failing ends the booking `failed` with its slots free, and `doctor`
lists any booking pending longer than the saga's stall time. In-process, on both databases."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from models import Booking, Payment, Session
from services.booking import compensate_booking, fail_booking, submit_booking
from services.errors import PermanentError, TransientError
from services.payments import Authorization, MoneyMovement, PaymentGateway
from services.stripe_gateway import StripeGateway
from tests.support import apply_config, booking_request, daily_slots, drain, package_config
from cli import doctor


class Gateway(PaymentGateway):
    """Authorizes every card; `fail_cancel` makes cancelling an authorization raise it."""

    def __init__(self, fail_cancel: Exception | None = None):
        self.ids, self.fail_cancel, self.cancelled = itertools.count(1), fail_cancel, []

    def authorize(self, *, amount_cents, currency, payment_method, email, booking_id, idempotency_key):
        return Authorization(f"pi_{next(self.ids)}", "cus_1", "requires_capture")

    def capture(self, intent_id, *, idempotency_key):
        return MoneyMovement(intent_id, 0, "succeeded")

    def cancel_authorization(self, intent_id, *, idempotency_key):
        if self.fail_cancel is not None:
            raise self.fail_cancel
        self.cancelled.append(intent_id)

    def charge_off_session(self, **kwargs):
        raise AssertionError("not used")

    def refund(self, intent_id, *, amount_cents, idempotency_key):
        raise AssertionError("not used")

    def find_refund(self, intent_id, idempotency_key):
        return None

    def find_charge(self, booking_id, idempotency_key):
        return None

    def intent_summary(self, intent_id):
        return {"status": "requires_capture", "amount_received": 0, "refunds": []}


class FailingConferencing(Exception):
    pass


def no_gateway(c) -> StripeGateway:
    """The real adapter as a service without STRIPE_API_KEY builds it."""
    return StripeGateway(c.settings.replace(stripe_api_key=None, stripe_api_base=None))


def booking(c, booking_id: str) -> Booking:
    with c.session_factory() as db:
        row = db.get(Booking, booking_id)
        db.expunge(row)
        return row


def held(c) -> int:
    with c.session_factory() as db:
        return db.query(Session).filter(Session.status.in_(("held", "confirmed"))).count()


def payment_statuses(c) -> list[str]:
    with c.session_factory() as db:
        return [p.status for p in db.query(Payment)]


def request(clock, n=3):
    return booking_request(daily_slots(clock() + timedelta(days=2), n), payment_method="pm_card_visa")


def failed_after_authorizing(c, clock, gateway: Gateway, step: str, exc: Exception, n=1, provider="none") -> str:
    """A booking whose card was authorized, then whose `step` failed: compensation is due."""
    from services.booking import authorize_payment

    c.__dict__["payments"] = gateway
    apply_config(c, package_config(n, price="150.00", provider=provider))
    booking_id = submit_booking(c, request(clock, n))
    authorize_payment(c, booking_id)
    fail_booking(c, booking_id, step, exc)
    return booking_id


def test_a_price_without_a_payment_gateway_is_refused_at_intake_holding_nothing(container, db_backend, clock):
    container.__dict__["payments"] = no_gateway(container)
    apply_config(container, package_config(3, price="150.00"))
    booking_id = submit_booking(container, request(clock))
    b = booking(container, booking_id)
    assert b.status == "failed" and b.failure["step"] == "validate"
    assert b.failure["code"] == "payment_unavailable" and "STRIPE_API_KEY" in b.failure["message"]
    assert "coach/pkg" in b.failure["message"]
    assert held(container) == 0 and payment_statuses(container) == []
    assert drain(container) == ["sessionpack.send_emails"]  # the customer is told; no step, no compensation


def test_a_free_event_type_needs_no_gateway(container, clock):
    container.__dict__["payments"] = no_gateway(container)
    apply_config(container, package_config(2))
    booking_id = submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=2), 2)))
    drain(container)
    assert booking(container, booking_id).status == "confirmed"


def test_a_booking_held_before_the_gateway_went_away_fails_without_calling_it(container, db_backend, clock):
    container.__dict__["payments"] = Gateway()
    apply_config(container, package_config(3, price="150.00"))
    booking_id = submit_booking(container, request(clock))
    assert held(container) == 3
    container.__dict__["payments"] = no_gateway(container)  # e.g. the worker restarted without its key
    drain(container)
    b = booking(container, booking_id)
    assert b.status == "failed" and b.saga_step == "done"
    assert (b.failure["step"], b.failure["code"]) == ("authorize", "payment_unavailable")
    assert held(container) == 0 and payment_statuses(container) == []


def test_an_authorization_left_by_an_earlier_release_is_undone_without_hanging(container, clock):
    """The issue's case: a Payment row `authorizing` with no intent, and no key to look it up."""
    container.__dict__["payments"] = Gateway()
    apply_config(container, package_config(3, price="150.00"))
    booking_id = submit_booking(container, request(clock))
    with container.uow() as uow:
        uow.db.add(Payment(booking_id=booking_id, amount_cents=15000, currency="USD",
                           payment_method="pm_card_visa", status="authorizing"))
        uow.commit()
    container.__dict__["payments"] = no_gateway(container)
    fail_booking(container, booking_id, "authorize", PermanentError("stripe_not_configured", "STRIPE_API_KEY is not set"))
    drain(container)
    b = booking(container, booking_id)
    assert b.status == "failed" and held(container) == 0
    assert payment_statuses(container) == ["cancel_failed"]
    ok, detail = doctor.uncancelled_authorizations(container)
    assert not ok and booking_id in detail


def test_a_compensation_that_keeps_failing_gives_up_and_frees_the_slots(container, db_backend, clock):
    gateway = Gateway(fail_cancel=TransientError("stripe_unreachable", "cannot reach Stripe"))
    booking_id = failed_after_authorizing(container, clock, gateway, "conferencing",
                                          FailingConferencing("the provider is down"), n=3, provider="builtin")
    with pytest.raises(TransientError):  # the task retries this one...
        compensate_booking(container, booking_id)
    assert booking(container, booking_id).status == "pending" and held(container) == 3
    compensate_booking(container, booking_id, give_up=gateway.fail_cancel)  # ...until its retries run out
    b = booking(container, booking_id)
    assert b.status == "failed" and b.failure["step"] == "conferencing" and held(container) == 0
    assert payment_statuses(container) == ["cancel_failed"]
    compensate_booking(container, booking_id)  # a late redelivery changes nothing
    assert booking(container, booking_id).status == "failed"


def test_a_permanent_refusal_to_cancel_is_left_over_not_a_hang(container, clock):
    gateway = Gateway(fail_cancel=PermanentError("api_key_revoked", "key revoked"))
    booking_id = failed_after_authorizing(container, clock, gateway, "capture",
                                          PermanentError("authorization_expired", "expired"))
    compensate_booking(container, booking_id)
    assert booking(container, booking_id).status == "failed" and held(container) == 0
    assert payment_statuses(container) == ["cancel_failed"] and gateway.cancelled == []


def test_the_task_gives_up_after_its_retries(container, clock):
    import tasks  # noqa: F401  (registers the tasks)
    from core.wiring import set_container
    from tasks.booking import COMPENSATE_RETRIES
    from worker.app import app

    gateway = Gateway(fail_cancel=TransientError("stripe_unreachable", "down"))
    booking_id = failed_after_authorizing(container, clock, gateway, "capture",
                                          PermanentError("authorization_expired", "expired"))
    set_container(container)
    try:
        app.tasks["sessionpack.compensate_booking"].apply(kwargs={"booking_id": booking_id},
                                                          retries=COMPENSATE_RETRIES, throw=True)
    finally:
        set_container(None)
    assert booking(container, booking_id).status == "failed" and held(container) == 0
    assert gateway.cancelled == []


def test_doctor_lists_a_booking_pending_longer_than_the_stall_time(container, clock):
    container.__dict__["payments"] = Gateway()
    apply_config(container, package_config(3, price="150.00"))
    booking_id = submit_booking(container, request(clock))  # no worker runs its steps
    ok, detail = doctor.stalled_bookings(container)
    assert ok, detail
    clock.advance(seconds=container.settings.saga_stall_seconds + 1)
    ok, detail = doctor.stalled_bookings(container)
    assert not ok and booking_id in detail and "authorize" in detail
    drain(container)
    assert doctor.stalled_bookings(container)[0]
