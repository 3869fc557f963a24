"""A booked package for the page tests: the saga run in-process (tests.support.drain) with an
in-memory payment gateway, so the views are tested without a browser, a worker or Stripe."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services.payments import Authorization, MoneyMovement, PaymentGateway
from services.tokens import make_token
from tests.support import (  # run_public: the admin-actor tests take it from here
    apply_config, booking_request, daily_slots, drain, package_config, run_public, run_public_tasks_here,  # noqa: F401
)
from web.app import create_app


class MemoryGateway(PaymentGateway):
    """Every card works; every call is remembered by its idempotency key."""

    def __init__(self):
        self.ids = itertools.count(1)
        self.by_key: dict[str, MoneyMovement] = {}

    def _movement(self, prefix: str, amount: int, key: str) -> MoneyMovement:
        if key not in self.by_key:
            self.by_key[key] = MoneyMovement(f"{prefix}_{next(self.ids)}", amount, "succeeded")
        return self.by_key[key]

    def authorize(self, *, amount_cents, currency, payment_method, email, booking_id, idempotency_key):
        m = self._movement("pi", amount_cents, idempotency_key)
        return Authorization(m.object_id, "cus_1", "requires_capture")

    def capture(self, intent_id, *, idempotency_key):
        return MoneyMovement(intent_id, 0, "succeeded")

    def cancel_authorization(self, intent_id, *, idempotency_key):
        return None

    def charge_off_session(self, *, amount_cents, currency, customer_id, payment_method, booking_id, idempotency_key):
        return self._movement("pi", amount_cents, idempotency_key)

    def refund(self, intent_id, *, amount_cents, idempotency_key):
        return self._movement("re", amount_cents, idempotency_key)

    def find_refund(self, intent_id, idempotency_key):
        return self.by_key.get(idempotency_key)

    def find_charge(self, booking_id, idempotency_key):
        return self.by_key.get(idempotency_key)

    def intent_summary(self, intent_id):
        return {"status": "succeeded", "amount_received": 0, "refunds": []}


@pytest.fixture
def web(container):
    """The container with an in-memory gateway and the lifecycle's tasks known to drain()."""

    container.__dict__["payments"] = MemoryGateway()
    return run_public_tasks_here(container, PUBLIC_TASKS)


PUBLIC_TASKS = ("sessionpack.cancel_sessions", "sessionpack.reschedule_session")


def book_package(c, n: int = 3, price: str | None = "150.00", *, days: int = 3, hhmm: str = "10:00",
                 **config) -> dict:
    """Book an n-session package through the saga; the booking object."""
    from models import Booking
    from services.booking import submit_booking
    from services.booking.views import booking_object

    apply_config(c, package_config(n, price=price, **config))
    request = booking_request(daily_slots(c.clock() + timedelta(days=days), n, hhmm),
                              payment_method="pm_card_visa" if price else None)
    booking_id = submit_booking(c, request)
    drain(c)
    with c.session_factory() as db:
        shown = booking_object(db, db.get(Booking, booking_id), c.settings)
    assert shown["status"] == "confirmed", shown["failure"]
    return shown


def token_of(c, session: dict) -> str:
    return make_token(c.settings.secret_key, session["id"])


@pytest.fixture
def client(web):
    return TestClient(create_app(web), base_url="https://testserver", follow_redirects=False)


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
