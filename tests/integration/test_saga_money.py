"""The saga's money steps against localstripe: a failure at capture is undone completely, and a
capture that reached Stripe before a crash is not sent twice."""
from __future__ import annotations

from datetime import timedelta

import pytest
import stripe

from models import Booking, Meeting, Payment, Session
from services.booking import capture_payment, submit_booking
from services.booking.views import booking_object
from services.errors import PermanentError
from tests.peers.localstripe_server import reset, running_localstripe
from tests.support import apply_config, booking_request, daily_slots, drain, package_config

pytestmark = pytest.mark.integration
KEY = "sk_test_sessionpack_saga"


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as url:
        yield url


@pytest.fixture
def paid(container, stripe_base):
    reset(stripe_base)
    container.settings = container.settings.replace(stripe_api_key=KEY, stripe_api_base=stripe_base)
    return container


def intents(stripe_base):
    return stripe.StripeClient(KEY, base_addresses={"api": stripe_base}).v1.payment_intents.list().data


class FailingCapture:
    """The real gateway, except that capture fails as told."""

    def __init__(self, real, error):
        self.real, self.error = real, error

    def __getattr__(self, name):
        return getattr(self.real, name)

    def capture(self, *args, **kwargs):
        raise self.error


def book(container, clock, n=3):
    apply_config(container, package_config(n, price="150.00"))
    booking_id = submit_booking(
        container, booking_request(daily_slots(clock() + timedelta(days=2), n), payment_method="pm_card_visa"))
    drain(container)
    with container.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), container.settings)


def test_a_capture_failure_rolls_the_booking_back(paid, db_backend, clock, stripe_base):
    paid.payments = FailingCapture(paid.payments, PermanentError("authorization_expired", "the authorization has expired"))
    shown = book(paid, clock)
    assert shown["status"] == "failed"
    assert shown["failure"] == {"step": "capture", "code": "authorization_expired", "message": "the authorization has expired"}
    assert shown["paid"] == "0.00"
    with paid.session_factory() as db:
        assert db.query(Session).filter(Session.status.in_(["held", "confirmed"])).count() == 0
        assert db.query(Meeting).filter(Meeting.status != "deleted").count() == 0
        assert [p.status for p in db.query(Payment)] == ["cancelled"]
    assert [i.status for i in intents(stripe_base)] == ["canceled"]  # no uncancelled authorization
    actions = [a["action"] for a in shown["activity"]]
    for expected in ("capture.failed", "compensation.meeting_deleted", "compensation.authorization_cancelled",
                     "compensation.slots_released", "booking.failed"):
        assert expected in actions


def test_a_capture_that_reached_stripe_before_a_crash_is_not_repeated(paid, clock, stripe_base):
    real = paid.payments

    class Crash(BaseException):
        pass

    class CrashAfterCapture:
        def __getattr__(self, name):
            return getattr(real, name)

        def capture(self, *args, **kwargs):
            real.capture(*args, **kwargs)
            raise Crash()  # the worker dies before recording the capture

    paid.payments = CrashAfterCapture()
    apply_config(paid, package_config(3, price="150.00"))
    booking_id = submit_booking(
        paid, booking_request(daily_slots(clock() + timedelta(days=2), 3), payment_method="pm_card_visa"))
    with pytest.raises(Crash):
        drain(paid)
    paid.payments = real
    capture_payment(paid, booking_id)  # the redelivered task
    drain(paid)
    with paid.session_factory() as db:
        shown = booking_object(db, db.get(Booking, booking_id), paid.settings)
    assert shown["status"] == "confirmed" and shown["paid"] == "150.00"
    captured = [i for i in intents(stripe_base) if i.status == "succeeded"]
    assert len(captured) == 1
