"""StripeGateway against a real localstripe server on loopback (and a tiny misbehaving HTTP peer
for the 429 / 5xx paths). Run from the project root: python -m pytest tests/integration/test_stripe_gateway.py
"""
from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest
import stripe

from services.errors import PermanentError, TransientError
from services.payments import Authorization, MoneyMovement
from services.stripe_gateway import StripeGateway
from tests.peers.localstripe_server import reset, running_localstripe
from core.settings import Settings

pytestmark = pytest.mark.integration

API_KEY = "sk_test_sessionpack"


def make_settings(tmp_path: Path, base: str | None, key: str | None = API_KEY) -> Settings:
    return Settings(
        var_dir=tmp_path, database_url="sqlite://", broker_url="memory://", secret_key="test",
        stripe_api_key=key, stripe_api_base=base, http_timeout_seconds=5.0,
    )


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as base_url:
        yield base_url


@pytest.fixture
def gateway(stripe_base, tmp_path) -> StripeGateway:
    reset(stripe_base)
    return StripeGateway(make_settings(tmp_path, stripe_base))


@pytest.fixture
def raw(stripe_base):
    """A plain Stripe client on the same peer, to look at what the gateway did."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": stripe_base}).v1


def all_intents(raw) -> list:
    return list(raw.payment_intents.list(params={"limit": 100}).auto_paging_iter())


def authorize(gateway, *, amount=80000, pm="pm_card_visa", booking="bk_1", key=None):
    return gateway.authorize(amount_cents=amount, currency="USD", payment_method=pm,
                             email="sam@example.org", booking_id=booking,
                             idempotency_key=key or f"{booking}-authorize")


def test_authorize_and_capture_800_dollars(gateway, raw):
    auth = authorize(gateway)
    assert isinstance(auth, Authorization)
    assert auth.status == "requires_capture"
    assert auth.intent_id.startswith("pi_") and auth.customer_id.startswith("cus_")

    pi = raw.payment_intents.retrieve(auth.intent_id)
    assert pi.capture_method == "manual" and pi.amount == 80000 and pi.currency == "usd"
    assert pi.customer == auth.customer_id
    assert dict(pi.metadata.to_dict()) == {"booking_id": "bk_1", "idempotency_key": "bk_1-authorize",
                                           "kind": "authorization"}
    customer = raw.customers.retrieve(auth.customer_id)
    assert customer.email == "sam@example.org" and customer.metadata["booking_id"] == "bk_1"
    # The card is saved on the customer (attached and default) for later off-session fees.
    saved = customer.invoice_settings.default_payment_method
    assert saved and saved == pi.payment_method
    assert raw.payment_methods.retrieve(saved).customer == auth.customer_id
    assert gateway.intent_summary(auth.intent_id)["amount_received"] == 0

    captured = gateway.capture(auth.intent_id, idempotency_key="bk_1-capture")
    assert captured == MoneyMovement(auth.intent_id, 80000, "succeeded")
    summary = gateway.intent_summary(auth.intent_id)
    assert summary == {"status": "succeeded", "amount_received": 80000, "refunds": []}

    # A redelivered capture changes nothing.
    assert gateway.capture(auth.intent_id, idempotency_key="bk_1-capture") == captured


def test_authorize_twice_with_one_key_authorizes_once(gateway, raw):
    first = authorize(gateway)
    again = authorize(gateway)
    assert again == first
    assert len(all_intents(raw)) == 1
    assert len(list(raw.customers.list(params={"limit": 100}).auto_paging_iter())) == 1
    # A different amount under the same key is a caller bug, refused like Stripe does.
    with pytest.raises(PermanentError) as err:
        authorize(gateway, amount=100)
    assert err.value.code == "stripe_idempotency_conflict"


def test_find_charge_recovers_the_authorization(gateway):
    auth = authorize(gateway, booking="bk_find")
    found = gateway.find_charge("bk_find", "bk_find-authorize")
    assert found == MoneyMovement(auth.intent_id, 80000, "requires_capture")
    assert gateway.find_charge("bk_find", "bk_find-other") is None
    assert gateway.find_charge("bk_other", "bk_find-authorize") is None
    # find_authorization also recovers the customer, needed later for off-session fees.
    assert gateway.find_authorization("bk_find", "bk_find-authorize") == auth
    assert gateway.find_authorization("bk_find", "bk_find-other") is None


def test_find_charge_pages_through_many_intents(gateway, raw):
    # localstripe has no search and no customer filter: the gateway pages through every intent.
    customer = raw.customers.create(params={"email": "x@example.org"})
    for i in range(105):
        raw.payment_intents.create(params={
            "amount": 100 + i, "currency": "usd", "customer": customer.id,
            "metadata": {"booking_id": f"bk_many_{i}", "idempotency_key": f"bk_many_{i}-authorize"}})
    found = gateway.find_charge("bk_many_104", "bk_many_104-authorize")
    assert found is not None and found.amount_cents == 204
    assert gateway.find_charge("bk_many_0", "bk_many_0-authorize").amount_cents == 100
    assert gateway.find_charge("bk_many_0", "nope") is None


def test_declined_at_charge_is_permanent_card_declined(gateway, raw):
    # pm_card_chargeCustomerFail attaches to the customer, then every charge on it is declined.
    with pytest.raises(PermanentError) as err:
        authorize(gateway, pm="pm_card_chargeCustomerFail", booking="bk_dec")
    assert err.value.code == "card_declined"
    assert "Your card was declined." in err.value.message
    assert not isinstance(err.value, TransientError)
    # The declined intent is not left pending.
    intent_id = err.value.details["intent_id"]
    assert raw.payment_intents.retrieve(intent_id).status == "canceled"
    assert gateway.find_charge("bk_dec", "bk_dec-authorize").status == "canceled"

    # The same request again gives the same answer and makes no new intent.
    with pytest.raises(PermanentError) as again:
        authorize(gateway, pm="pm_card_chargeCustomerFail", booking="bk_dec")
    assert again.value.code == "card_declined"
    assert len(all_intents(raw)) == 1


@pytest.mark.parametrize("pm", ["pm_card_visa_chargeDeclined", "pm_card_chargeDeclined"])
def test_declined_at_attach_is_permanent_card_declined(gateway, raw, pm):
    # localstripe knows pm_card_visa_chargeDeclined; pm_card_chargeDeclined it does not, so the
    # adapter makes it from the generic-decline test card 4000000000000002.
    with pytest.raises(PermanentError) as err:
        authorize(gateway, pm=pm, booking="bk_att")
    assert err.value.code == "card_declined"
    assert all_intents(raw) == []


def test_unknown_test_card_alias_is_made_from_its_card_number(gateway, raw):
    auth = authorize(gateway, pm="pm_card_mastercard", booking="bk_mc")
    assert auth.status == "requires_capture"
    pm = raw.payment_methods.retrieve(raw.payment_intents.retrieve(auth.intent_id).payment_method)
    assert pm.card.last4 == "4444"


def test_unknown_payment_method_is_permanent(gateway):
    with pytest.raises(PermanentError) as err:
        authorize(gateway, pm="pm_does_not_exist", booking="bk_unk")
    assert err.value.details["http_status"] == 404


def test_cancel_authorization_twice_is_ok(gateway, raw):
    auth = authorize(gateway, booking="bk_c")
    gateway.cancel_authorization(auth.intent_id, idempotency_key="bk_c-cancel")
    gateway.cancel_authorization(auth.intent_id, idempotency_key="bk_c-cancel")
    assert raw.payment_intents.retrieve(auth.intent_id).status == "canceled"
    with pytest.raises(PermanentError) as err:
        gateway.capture(auth.intent_id, idempotency_key="bk_c-capture")
    assert err.value.code == "intent_not_capturable"
    # A redelivered authorize after the compensation reports the cancelled intent, not a new one.
    assert authorize(gateway, booking="bk_c").status == "canceled"
    assert len(all_intents(raw)) == 1


def test_cancel_after_capture_is_refused(gateway):
    auth = authorize(gateway, booking="bk_cc")
    gateway.capture(auth.intent_id, idempotency_key="bk_cc-capture")
    with pytest.raises(PermanentError) as err:
        gateway.cancel_authorization(auth.intent_id, idempotency_key="bk_cc-cancel")
    assert err.value.code == "intent_already_captured"


def test_off_session_fee_on_the_saved_card(gateway, raw):
    auth = authorize(gateway, amount=15000, booking="bk_fee")
    gateway.capture(auth.intent_id, idempotency_key="bk_fee-capture")
    saved = raw.customers.retrieve(auth.customer_id).invoice_settings.default_payment_method

    fee = gateway.charge_off_session(amount_cents=500, currency="USD", customer_id=auth.customer_id,
                                     payment_method="pm_card_visa", booking_id="bk_fee",
                                     idempotency_key="bk_fee-fee-1")
    assert fee.amount_cents == 500 and fee.status == "succeeded" and fee.object_id != auth.intent_id
    pi = raw.payment_intents.retrieve(fee.object_id)
    assert pi.customer == auth.customer_id and pi.payment_method == saved
    assert pi.metadata["idempotency_key"] == "bk_fee-fee-1"
    assert gateway.intent_summary(fee.object_id)["amount_received"] == 500

    # The saved pm_... id works as well as the id the customer booked with.
    fee2 = gateway.charge_off_session(amount_cents=700, currency="USD", customer_id=auth.customer_id,
                                      payment_method=saved, booking_id="bk_fee",
                                      idempotency_key="bk_fee-fee-2")
    assert fee2.status == "succeeded" and raw.payment_intents.retrieve(fee2.object_id).payment_method == saved

    # Redelivered: the same charge comes back, nothing is charged again; find_charge sees it.
    again = gateway.charge_off_session(amount_cents=500, currency="USD", customer_id=auth.customer_id,
                                       payment_method="pm_card_visa", booking_id="bk_fee",
                                       idempotency_key="bk_fee-fee-1")
    assert again == fee
    assert gateway.find_charge("bk_fee", "bk_fee-fee-1") == fee
    assert len(all_intents(raw)) == 3


def test_off_session_fee_declined(gateway, raw):
    auth = authorize(gateway, amount=15000, booking="bk_fd")
    gateway.capture(auth.intent_id, idempotency_key="bk_fd-capture")
    # A card that attaches but whose charges fail: the fee is declined, permanently.
    with pytest.raises(PermanentError) as err:
        gateway.charge_off_session(amount_cents=500, currency="USD", customer_id=auth.customer_id,
                                   payment_method="pm_card_chargeCustomerFail", booking_id="bk_fd",
                                   idempotency_key="bk_fd-fee-1")
    assert err.value.code == "card_declined"
    assert gateway.find_charge("bk_fd", "bk_fd-fee-1").status == "canceled"
    with pytest.raises(PermanentError):
        gateway.charge_off_session(amount_cents=500, currency="USD", customer_id=auth.customer_id,
                                   payment_method="pm_card_chargeCustomerFail", booking_id="bk_fd",
                                   idempotency_key="bk_fd-fee-1")
    assert len(all_intents(raw)) == 2


def test_partial_refunds_and_find_refund(gateway):
    auth = authorize(gateway, amount=15000, booking="bk_r")
    gateway.capture(auth.intent_id, idempotency_key="bk_r-capture")
    assert gateway.find_refund(auth.intent_id, "bk_r-refund-1") is None

    first = gateway.refund(auth.intent_id, amount_cents=2500, idempotency_key="bk_r-refund-1")
    second = gateway.refund(auth.intent_id, amount_cents=5000, idempotency_key="bk_r-refund-2")
    assert first.object_id.startswith("re_") and first.amount_cents == 2500 and first.status == "succeeded"
    assert second.amount_cents == 5000 and second.object_id != first.object_id

    # Recovery by key, as a redelivered task would do it.
    assert gateway.find_refund(auth.intent_id, "bk_r-refund-1") == first
    assert gateway.find_refund(auth.intent_id, "bk_r-refund-2") == second
    assert gateway.find_refund(auth.intent_id, "bk_r-refund-3") is None
    # Refunding again with a used key returns the earlier refund and moves nothing.
    assert gateway.refund(auth.intent_id, amount_cents=2500, idempotency_key="bk_r-refund-1") == first

    summary = gateway.intent_summary(auth.intent_id)
    assert summary["status"] == "succeeded" and summary["amount_received"] == 15000
    assert sorted(summary["refunds"], key=lambda r: r["amount"]) == [
        {"id": first.object_id, "amount": 2500, "status": "succeeded"},
        {"id": second.object_id, "amount": 5000, "status": "succeeded"},
    ]


def test_find_refund_on_an_intent_without_charge(gateway):
    auth = authorize(gateway, booking="bk_nc")
    gateway.cancel_authorization(auth.intent_id, idempotency_key="bk_nc-cancel")
    assert gateway.find_refund(auth.intent_id, "bk_nc-refund") is None


def test_check_works(gateway):
    gateway.check()


def test_check_fails_clearly_with_a_wrong_base_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    gateway = StripeGateway(make_settings(tmp_path, base), max_network_retries=0)
    with pytest.raises(TransientError) as err:
        gateway.check()
    assert err.value.code == "stripe_unreachable"
    assert base in err.value.message and "STRIPE_API_BASE" in err.value.message


def test_check_fails_clearly_with_a_path_that_is_not_stripe(stripe_base, tmp_path):
    gateway = StripeGateway(make_settings(tmp_path, stripe_base + "/not-stripe"))
    with pytest.raises(PermanentError) as err:
        gateway.check()
    assert err.value.details["http_status"] == 404


def test_check_fails_clearly_with_a_refused_key(stripe_base, tmp_path):
    gateway = StripeGateway(make_settings(tmp_path, stripe_base, key="pk_test_not_a_secret_key"))
    with pytest.raises(PermanentError) as err:
        gateway.check()
    assert err.value.code == "stripe_authentication_failed" and "STRIPE_API_KEY" in err.value.message


def test_missing_key_is_a_clear_permanent_error(tmp_path):
    gateway = StripeGateway(make_settings(tmp_path, "http://127.0.0.1:9", key=None))
    with pytest.raises(PermanentError) as err:
        gateway.check()
    assert err.value.code == "stripe_not_configured"


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status in the server's `status` attribute."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.hits += 1
        body = b'{"error": {"type": "api_error", "message": "try again"}}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", "7")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def misbehaving_peer():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.hits = 0
    server.status = 503
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status, code", [(429, "stripe_rate_limited"), (503, "stripe_unavailable")])
def test_rate_limits_and_server_errors_are_transient(misbehaving_peer, tmp_path, status, code):
    misbehaving_peer.status = status
    base = f"http://127.0.0.1:{misbehaving_peer.server_address[1]}"
    gateway = StripeGateway(make_settings(tmp_path, base), max_network_retries=0)
    with pytest.raises(TransientError) as err:
        gateway.capture("pi_123", idempotency_key="k")
    assert err.value.code == code
    assert err.value.retry_after == 7.0
    assert misbehaving_peer.hits == 1


def test_server_errors_are_retried_once_by_default(misbehaving_peer, tmp_path):
    base = f"http://127.0.0.1:{misbehaving_peer.server_address[1]}"
    gateway = StripeGateway(make_settings(tmp_path, base))
    with pytest.raises(TransientError):
        gateway.capture("pi_123", idempotency_key="k")
    assert misbehaving_peer.hits == 2
