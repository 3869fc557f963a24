"""Stripe's webhook events in, through `POST /webhooks/stripe` (the web app in-process) against
localstripe: a refund made directly on Stripe (as the dashboard would) lands in the ledger and the
activity stream and reconcile stays clean; a failed refund and a dispute are recorded and the owner
is emailed; an expired authorization fails the booking cleanly; a forged signature gets 400 and
changes nothing; a repeated event is handled once. localstripe sends no refund or dispute events,
so the test signs those payloads itself with Stripe's scheme."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Booking, LedgerEntry, OutboxEmail, Payment, StripeEvent
from services import lifecycle
from services.booking import authorize_payment, capture_payment, provision_conferencing, submit_booking
from services.booking.views import booking_object
from tests.peers.localstripe_server import reset, running_localstripe
from tests.support import apply_config, booking_request, daily_slots, drain, package_config
from web.app import create_app

pytestmark = pytest.mark.integration

KEY = "sk_test_sessionpack_hooks_in"
WHSEC = "whsec_test_hooks_in_0123456789"


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as url:
        yield url


@pytest.fixture
def paid(container, stripe_base):
    reset(stripe_base)
    container.settings = container.settings.replace(stripe_api_key=KEY, stripe_api_base=stripe_base,
                                                    stripe_webhook_secret=WHSEC)
    return container


@pytest.fixture
def client(paid):
    return TestClient(create_app(paid))


def stripe_client(base):
    return stripe.StripeClient(KEY, base_addresses={"api": base})


def signed(payload: dict, secret: str = WHSEC, t: int | None = None) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def event(kind: str, obj: dict) -> dict:
    return {"id": "evt_" + secrets.token_hex(8), "object": "event", "type": kind, "api_version": "2024-06-20",
            "created": int(time.time()), "data": {"object": obj}}


def post(client, payload, **kw):
    body, headers = signed(payload, **kw)
    return client.post("/webhooks/stripe", content=body, headers=headers)


def book(c, clock, price="150.00", drain_it=True) -> str:
    apply_config(c, package_config(1, price=price))
    booking_id = submit_booking(
        c, booking_request(daily_slots(clock() + timedelta(days=3), 1), payment_method="pm_card_visa"))
    if drain_it:
        drain(c)
    return booking_id


def show(c, booking_id) -> dict:
    with c.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), c.settings)


def intent_of(c, booking_id) -> str:
    with c.session_factory() as db:
        return db.execute(select(Payment.intent_id).where(Payment.booking_id == booking_id)).scalar_one()


def owner_emails(c, booking_id):
    with c.session_factory() as db:
        return [e for e in db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == booking_id,
                                                                OutboxEmail.kind == "payment_alert_owner")).scalars()]


def test_dashboard_refund_lands_in_the_ledger_and_reconcile_stays_clean(paid, client, db_backend, clock, stripe_base):
    booking_id = book(paid, clock)
    intent = intent_of(paid, booking_id)
    # The owner refunds 40.00 in the Stripe dashboard: straight to Stripe, not through us.
    refund = stripe_client(stripe_base).v1.refunds.create({"payment_intent": intent, "amount": 4000})
    assert lifecycle.reconcile(paid, booking_id)["ok"] is False  # not yet known to the ledger

    refund_obj = {"id": refund.id, "object": "refund", "amount": 4000, "status": "succeeded",
                  "payment_intent": intent, "currency": "usd"}
    charge = {"id": "ch_" + secrets.token_hex(6), "object": "charge", "payment_intent": intent, "amount_refunded": 4000,
              "refunded": False, "refunds": {"object": "list", "data": [refund_obj]}}
    payload = event("charge.refunded", charge)
    r = post(client, payload)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "recorded_1_refunds" and r.json()["booking_id"] == booking_id

    shown = show(paid, booking_id)
    assert shown["refunded"] == "40.00" and shown["paid"] == "150.00"
    entry = next(a for a in shown["activity"] if a["action"] == "refund.succeeded")
    assert entry["actor"] == "stripe" and entry["details"]["refund"] == refund.id and entry["details"]["outside"]
    assert lifecycle.reconcile(paid, booking_id) == {"ok": True, "bookings": 1, "differences": []}

    # The same event again, and refund.updated for the same refund: nothing more is recorded.
    assert post(client, payload).json()["outcome"] == "duplicate"
    assert post(client, event("refund.updated", refund_obj)).json()["outcome"] == "nothing_new"
    assert show(paid, booking_id)["refunded"] == "40.00"
    with paid.session_factory() as db:
        assert db.query(LedgerEntry).filter(LedgerEntry.kind == "refund").count() == 1


def test_our_own_refund_announced_by_stripe_is_not_counted_twice(paid, client, clock, stripe_base):
    booking_id = book(paid, clock)
    result = lifecycle.refund_booking(paid, booking_id, "25.00", admin=True, change_key="chg-own-refund")
    drain(paid)
    with paid.session_factory() as db:
        ours = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "refund")).scalar_one()
    refund_obj = {"id": ours.stripe_object_id, "object": "refund", "amount": 2500, "status": "succeeded",
                  "payment_intent": intent_of(paid, booking_id), "metadata": {"idempotency_key": ours.idempotency_key}}
    assert post(client, event("refund.updated", refund_obj)).json()["outcome"] == "nothing_new"
    assert show(paid, booking_id)["refunded"] == "25.00"
    assert result


def test_failed_refund_and_dispute_are_recorded_and_the_owner_is_told(paid, client, db_backend, clock):
    booking_id = book(paid, clock)
    intent = intent_of(paid, booking_id)
    failed = {"id": "re_failed_1", "object": "refund", "amount": 1000, "status": "failed",
              "failure_reason": "expired_or_canceled_card", "payment_intent": intent}
    assert post(client, event("refund.failed", failed)).json()["outcome"] == "refund_failed"
    dispute = {"id": "dp_1", "object": "dispute", "amount": 15000, "payment_intent": intent, "charge": "ch_1",
               "reason": "fraudulent", "status": "needs_response"}
    assert post(client, event("charge.dispute.created", dispute)).json()["outcome"] == "dispute_recorded"
    actions = {a["action"]: a for a in show(paid, booking_id)["activity"]}
    assert actions["refund.failed"]["details"]["refund"] == "re_failed_1"
    assert actions["payment.disputed"]["details"]["reason"] == "fraudulent"
    mails = owner_emails(paid, booking_id)
    assert len(mails) == 2 and {m.to_addr for m in mails} == {"kim@example.com"}
    assert any("expired_or_canceled_card" in m.text_body for m in mails)
    assert any("disputed" in m.subject.lower() for m in mails)
    assert show(paid, booking_id)["refunded"] == "0.00"


def test_expired_authorization_fails_the_booking_cleanly(paid, client, db_backend, clock, stripe_base):
    booking_id = book(paid, clock, drain_it=False)
    # Run the saga up to (not including) capture: authorized, meetings made.
    from tests.support import claim_next_task

    while True:
        name, kwargs = claim_next_task(paid)
        if name == "sessionpack.capture_payment":
            break
        {"sessionpack.authorize_payment": authorize_payment,
         "sessionpack.provision_conferencing": provision_conferencing}[name](paid, kwargs["booking_id"])
    intent = intent_of(paid, booking_id)
    # Stripe cancels the authorization (it expired); it says so with payment_intent.canceled.
    stripe_client(stripe_base).v1.payment_intents.cancel(intent)
    obj = {"id": intent, "object": "payment_intent", "status": "canceled", "cancellation_reason": "automatic"}
    r = post(client, event("payment_intent.canceled", obj))
    assert r.json()["outcome"] == "booking_failing"
    capture_payment(paid, booking_id)  # the capture task that was on its way does nothing
    drain(paid)
    shown = show(paid, booking_id)
    assert shown["status"] == "failed" and shown["failure"]["code"] == "authorization_expired"
    assert shown["paid"] == "0.00" and [s["status"] for s in shown["sessions"]] == ["cancelled"]
    assert "compensation.slots_released" in [a["action"] for a in shown["activity"]]
    # A later duplicate, or the event for a booking already settled, changes nothing.
    assert post(client, event("payment_intent.canceled", obj)).json()["outcome"] == "left_failed"


def test_forged_signature_gets_400_and_changes_nothing(paid, client, clock, stripe_base):
    booking_id = book(paid, clock)
    refund = {"id": "re_forged", "object": "refund", "amount": 15000, "status": "succeeded",
              "payment_intent": intent_of(paid, booking_id)}
    payload = event("refund.updated", refund)
    for kwargs in ({"secret": "whsec_someone_else"}, {"t": int(time.time()) - 3600}):
        r = post(client, payload, **kwargs)
        assert r.status_code == 400 and r.json()["error"]["code"] == "signature_invalid"
    body, headers = signed(payload)
    r = client.post("/webhooks/stripe", content=body.replace(b"15000", b"99999"), headers=headers)
    assert r.status_code == 400
    r = client.post("/webhooks/stripe", content=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "signature_missing"
    assert show(paid, booking_id)["refunded"] == "0.00"
    with paid.session_factory() as db:
        assert db.query(StripeEvent).count() == 0


def test_without_a_secret_the_endpoint_answers_503(paid, client):
    paid.settings = paid.settings.replace(stripe_webhook_secret=None)
    r = post(client, event("charge.refunded", {"id": "ch_1"}))
    assert r.status_code == 503 and r.json()["error"]["code"] == "stripe_webhooks_not_configured"
