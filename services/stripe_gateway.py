"""`StripeGateway`: the `PaymentGateway` backed by the Stripe API (or a Stripe-shaped test peer).

One `stripe.StripeClient` per gateway, pointed at `settings.stripe_api_base` when it is set
(localstripe in tests), with the HTTP timeout from settings and one network retry (the client
library then resends a POST with the same Idempotency-Key, so the retry cannot move money twice).

Idempotency does not rest on the peer. Every money movement carries the caller's idempotency key
twice: as the Stripe `Idempotency-Key` header (honoured by Stripe for 24 h, ignored by
localstripe) and in the object's `metadata["idempotency_key"]`. Before creating anything,
`authorize`, `charge_off_session` and `refund` look for an object already carrying that key and
return it instead; `capture` and `cancel_authorization` are idempotent by state. The `find_*`
methods expose the same look-ups so that callers can recover an object whose creation they did
not get to record. (Two calls racing with the same key can still both create on a peer that
ignores the header; callers serialise the work of one booking, and real Stripe closes the gap.)

Finding a PaymentIntent by metadata: localstripe has neither the Search API nor a `customer`
filter on `GET /v1/payment_intents` (it answers 404 / "Unexpected customer"). So we first scan
the most recent intents (Stripe lists newest first, which is where a lost write is), then ask the
Search API, and when the peer has no search (answers 404, remembered per gateway) we scan every
intent. Search alone would not do on Stripe: its index lags writes by up to a minute.

Test payment methods: localstripe knows `pm_card_visa`, `pm_card_visa_chargeDeclined` (declines
when attached) and `pm_card_chargeCustomerFail` (attaches, every charge declines). Only when the
API base is NOT Stripe's own (`*.stripe.com`) and the peer answers 404 for one of the other
well-known `pm_card_*` ids in `TEST_CARD_NUMBERS`, the adapter creates a PaymentMethod from that
test card's number instead. Against Stripe a raw card number is never sent.

localstripe also rejects parameters it does not know (`setup_future_usage`, `description`,
`statement_descriptor`, `automatic_payment_methods`, refund `reason`, `cancellation_reason`),
so requests carry only parameters both accept; saving the card for off-session use is asked
through `payment_method_options[card][setup_future_usage]`, which both accept. It does not
report `amount_received` (derived from the captured charge here) and does not refuse
over-refunds or refunds of uncaptured intents (callers guard the refundable amount).

Amounts: callers speak our units (`services.currency`: two decimals for USD and KWD, none for
JPY and ISK); the gateway converts to Stripe's minor units on the way out (`to_stripe`: 10.00 KWD
is 10000, 500 ISK is 50000) and back on the way in (`from_stripe`), so every amount it returns
is in our units too.

One module (about 600 lines) on purpose: one adapter for one external API; its methods share the
client, the idempotency look-ups and the translation of Stripe's errors into ours.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import stripe

from core.settings import Settings

from .currency import from_stripe, to_stripe
from .errors import PermanentError, TransientError
from .payments import Authorization, MoneyMovement, PaymentGateway

log = logging.getLogger("sessionpack.payments.stripe")

# Stripe's well-known test PaymentMethod ids and the test card each stands for. Used only against
# a non-Stripe API base that does not know the id itself (see the module docstring).
TEST_CARD_NUMBERS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeCustomerFail": "4000000000000341",  # attaches; every charge is declined
    "pm_card_chargeDeclined": "4000000000000002",  # generic decline
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
}

# How many of the most recent PaymentIntents to scan before asking the Search API: one page, far
# more than the intents created during the minute by which search can lag.
RECENT_SCAN_LIMIT = 100
PAGE_SIZE = 100
# Statuses in which a PaymentIntent holds or has taken the customer's money.
LIVE_STATUSES = ("requires_capture", "processing", "succeeded")


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    return obj.to_dict()


def _ours(pi: dict, amount: Any) -> int:
    """A Stripe amount of this intent's currency in our units (10000 for 10.00 KWD -> 1000)."""
    return from_stripe(int(amount or 0), str(pi.get("currency") or "usd"))


def _metadata(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _search_literal(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class StripeGateway(PaymentGateway):
    """`PaymentGateway` over the Stripe API; see the module docstring for the idempotency rules."""

    def __init__(self, settings: Settings, *, max_network_retries: int = 1,
                 clock: Callable[[], datetime] | None = None):
        self._api_key = settings.stripe_api_key
        self._api_base = (settings.stripe_api_base or stripe.DEFAULT_API_BASE).rstrip("/")
        self._timeout = settings.http_timeout_seconds
        self._max_network_retries = max_network_retries
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        host = (urlparse(self._api_base).hostname or "").lower()
        self._is_stripe = host == "stripe.com" or host.endswith(".stripe.com")
        self._client: stripe.StripeClient | None = None
        self._search_supported: bool | None = None  # unknown until the peer is asked once

    @property
    def configured(self) -> bool:
        return bool(self._api_key)

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def _v1(self):
        # Built on first use: a process without a Stripe key can still build its container, and
        # the error then names the setting to fix.
        if self._client is None:
            if not self._api_key:
                raise PermanentError(
                    "stripe_not_configured",
                    "STRIPE_API_KEY is not set: set it to your Stripe secret key (any sk_test_... "
                    "key for a local test server named by STRIPE_API_BASE)",
                )
            self._client = stripe.StripeClient(
                self._api_key,
                base_addresses={"api": self._api_base},
                max_network_retries=self._max_network_retries,
                http_client=stripe.RequestsClient(timeout=self._timeout),
            )
        return self._client.v1

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Translate Stripe's exceptions into ours: what may pass is Transient, the rest Permanent."""
        try:
            yield
        except stripe.CardError as e:
            body = (e.json_body or {}).get("error") or {}
            message = e.user_message or "The card was declined."
            raise PermanentError(
                e.code or "card_declined",
                f"{message} (while {action}); ask the customer for another payment method",
                stripe_message=message, decline_code=body.get("decline_code"), http_status=e.http_status,
            ) from e
        except stripe.RateLimitError as e:
            raise TransientError(
                "stripe_rate_limited",
                f"Stripe at {self._api_base} asked us to slow down (429) while {action}; retry later",
                retry_after=self._retry_after(e), http_status=e.http_status,
            ) from e
        except stripe.APIConnectionError as e:
            raise TransientError(
                "stripe_unreachable",
                f"could not reach the Stripe API at {self._api_base} while {action}: "
                f"{e.user_message or e}. Check STRIPE_API_BASE and the network",
            ) from e
        except stripe.AuthenticationError as e:
            raise PermanentError(
                "stripe_authentication_failed",
                f"the Stripe API at {self._api_base} refused the key while {action}: "
                f"{e.user_message}. Check STRIPE_API_KEY",
                http_status=e.http_status,
            ) from e
        except stripe.PermissionError as e:
            raise PermanentError(
                "stripe_permission_denied",
                f"the Stripe key may not do this ({action}): {e.user_message}. Use a key with more rights",
                http_status=e.http_status,
            ) from e
        except stripe.IdempotencyError as e:
            raise PermanentError(
                "stripe_idempotency_conflict",
                f"Stripe refused a reused idempotency key with different parameters while {action}: "
                f"{e.user_message}. The request changed since its first attempt",
                http_status=e.http_status,
            ) from e
        except stripe.StripeError as e:
            status = e.http_status
            # 409 is Stripe's "a concurrent request holds a lock": it passes. So do 5xx and answers
            # that are not JSON at all without a status (a proxy in between).
            if status is None or status == 409 or status >= 500:
                raise TransientError(
                    "stripe_unavailable",
                    f"the Stripe API at {self._api_base} failed while {action} (HTTP {status}): "
                    f"{e.user_message or e}; retry later",
                    retry_after=self._retry_after(e), http_status=status,
                ) from e
            raise PermanentError(
                getattr(e, "code", None) or "stripe_request_refused",
                f"the Stripe API at {self._api_base} refused {action} (HTTP {status}): {e.user_message or e}",
                http_status=status, stripe_param=getattr(e, "param", None),
            ) from e

    @staticmethod
    def _retry_after(e: stripe.StripeError) -> float | None:
        try:
            value = (e.headers or {}).get("retry-after") or (e.headers or {}).get("Retry-After")
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _options(idempotency_key: str | None) -> dict:
        return {"idempotency_key": idempotency_key} if idempotency_key else {}

    # -- payment methods and customers ---------------------------------------------------------
    def _attach(self, payment_method: str, customer_id: str, idempotency_key: str) -> str:
        """Attach the PaymentMethod to the customer; the id of the attached one (a test id such as
        `pm_card_visa` becomes a fresh `pm_...`)."""
        with self._errors("attaching the payment method to the customer"):
            try:
                pm = self._v1.payment_methods.attach(
                    payment_method, params={"customer": customer_id},
                    options=self._options(f"{idempotency_key}:attach"))
            except stripe.InvalidRequestError as e:
                number = TEST_CARD_NUMBERS.get(payment_method)
                if self._is_stripe or e.http_status != 404 or number is None:
                    raise
                # A local peer that does not know this well-known test id: make it from its card.
                log.info("test peer does not know %s; creating it from its test card", payment_method)
                created = self._v1.payment_methods.create(
                    params={"type": "card", "card": {
                        "number": number, "exp_month": 12,
                        "exp_year": self._clock().year + 5, "cvc": "123"}},
                    options=self._options(f"{idempotency_key}:test-card"))
                pm = self._v1.payment_methods.attach(
                    created.id, params={"customer": customer_id},
                    options=self._options(f"{idempotency_key}:attach-test-card"))
        return pm.id

    def _customer_for_booking(self, email: str, booking_id: str) -> dict | None:
        # A retried authorize reuses the customer its first attempt made (listing by email is
        # consistent on Stripe, unlike search), so a retry leaves no orphan customer behind.
        with self._errors("looking up the customer"):
            page = self._v1.customers.list(params={"email": email, "limit": PAGE_SIZE})
            for customer in page.auto_paging_iter():
                data = _as_dict(customer)
                if _metadata(data).get("booking_id") == booking_id:
                    return data
        return None

    def _saved_payment_method(self, customer: dict, payment_method: str) -> str | None:
        meta = _metadata(customer)
        saved = meta.get("saved_payment_method")
        if saved and payment_method in (saved, meta.get("requested_payment_method")):
            return saved
        return None

    # -- finding PaymentIntents by metadata ----------------------------------------------------
    def _find_intent(self, booking_id: str, idempotency_key: str) -> dict | None:
        def matches(pi: dict) -> bool:
            meta = _metadata(pi)
            return meta.get("idempotency_key") == idempotency_key and meta.get("booking_id") == booking_id

        if self._search_supported is False:
            return self._scan_intents(matches, limit=None)
        found = self._scan_intents(matches, limit=RECENT_SCAN_LIMIT)
        if found is not None:
            return found
        query = f"metadata[\"idempotency_key\"]:{_search_literal(idempotency_key)}"
        with self._errors("searching payment intents"):
            try:
                result = self._v1.payment_intents.search(params={"query": query, "limit": PAGE_SIZE})
            except stripe.InvalidRequestError as e:
                if e.http_status not in (400, 404):
                    raise
                if e.http_status == 404:
                    # No Search API on this peer (localstripe routes it to "retrieve id=search").
                    log.info("payment intent search unavailable at %s; scanning instead", self._api_base)
                    self._search_supported = False
                else:  # search refused this query: a full scan is slow but still right
                    log.warning("payment intent search refused %r: %s", query, e.user_message)
                return self._scan_intents(matches, limit=None)
            self._search_supported = True
            for pi in result.auto_paging_iter():
                data = _as_dict(pi)
                if matches(data):
                    return data
        return None

    def _scan_intents(self, matches: Callable[[dict], bool], limit: int | None) -> dict | None:
        with self._errors("listing payment intents"):
            page = self._v1.payment_intents.list(params={"limit": PAGE_SIZE})
            # islice stops before the iterator asks the peer for a page beyond the limit.
            for pi in itertools.islice(page.auto_paging_iter(), limit):
                data = _as_dict(pi)
                if matches(data):
                    return data
        return None

    def _retrieve_intent(self, intent_id: str) -> dict:
        with self._errors(f"reading PaymentIntent {intent_id}"):
            return _as_dict(self._v1.payment_intents.retrieve(intent_id))

    @staticmethod
    def _decline_of(pi: dict) -> dict | None:
        """The decline recorded on an intent: in our metadata (written when it was declined), or
        Stripe's last_payment_error."""
        meta = _metadata(pi)
        if meta.get("decline_code"):
            return {"code": meta["decline_code"], "message": meta.get("decline_message") or "The card was declined."}
        error = pi.get("last_payment_error")
        if error and pi.get("status") in ("requires_payment_method", "canceled"):
            return {"code": error.get("code") or "card_declined",
                    "message": error.get("message") or "The card was declined."}
        return None

    def _raise_decline(self, pi: dict, action: str) -> None:
        decline = self._decline_of(pi)
        if decline is None:
            return
        raise PermanentError(
            decline["code"],
            f"{decline['message']} (while {action}); ask the customer for another payment method",
            stripe_message=decline["message"], intent_id=pi.get("id"),
        )

    def _bury_declined(self, error: PermanentError, cause: BaseException | None, booking_id: str,
                       idempotency_key: str) -> None:
        """Cancel the PaymentIntent a decline left behind and record the decline on it, so that
        nothing stays pending and a retry with the same key gives the same answer."""
        body = (getattr(cause, "json_body", None) or {}).get("error") or {}
        pi = body.get("payment_intent") if isinstance(body.get("payment_intent"), dict) else None
        try:
            if pi is None:  # localstripe does not return the intent with the error
                pi = self._find_intent(booking_id, idempotency_key)
            if pi is None:
                return
            error.details["intent_id"] = pi["id"]
            with self._errors("recording the decline"):
                self._v1.payment_intents.update(pi["id"], params={"metadata": {
                    "decline_code": error.code,
                    "decline_message": error.details.get("stripe_message") or error.message}})
                if pi.get("status") != "canceled":
                    self._v1.payment_intents.cancel(pi["id"], options=self._options(f"{idempotency_key}:cancel-declined"))
        except (PermanentError, TransientError) as e:
            # The decline is the answer; a leftover declined intent holds no money.
            log.warning("could not tidy up the declined intent for %s: %s", idempotency_key, e.message)

    @staticmethod
    def _amount_received(pi: dict) -> int:
        """In our units (services.currency), like every amount this gateway returns."""
        value = pi.get("amount_received")
        if value is None:
            # localstripe does not report amount_received: derive it from the captured charge.
            charge = pi.get("latest_charge")
            captured = isinstance(charge, dict) and charge.get("captured") and charge.get("status") == "succeeded"
            value = (charge.get("amount") or 0) if captured else 0
        return _ours(pi, value)

    def _list_refunds(self, pi: dict) -> list[dict]:
        if not pi.get("latest_charge"):
            # Nothing was charged, so nothing can be refunded (and localstripe fails with a 500
            # when asked for the refunds of an intent without a charge).
            return []
        with self._errors(f"listing the refunds of {pi['id']}"):
            page = self._v1.refunds.list(params={"payment_intent": pi["id"], "limit": PAGE_SIZE})
            return [_as_dict(r) for r in page.auto_paging_iter()]

    # -- the interface ---------------------------------------------------------------------------
    def authorize(self, *, amount_cents: int, currency: str, payment_method: str, email: str,
                  booking_id: str, idempotency_key: str) -> Authorization:
        """Create (or reuse) the booking's Customer, attach the PaymentMethod and make it the
        customer's default (saved for off-session fees), then a manual-capture PaymentIntent
        confirmed for the amount.

        With a key already used, returns that intent's Authorization (whatever its status, e.g.
        `canceled` after a compensation) or raises its decline again; never authorizes twice.
        Raises PermanentError (`card_declined`, ...) or TransientError.
        """
        existing = self._find_intent(booking_id, idempotency_key)
        if existing is not None:
            self._check_same_request(existing, amount_cents, currency, idempotency_key)
            self._raise_decline(existing, "authorizing the payment")
            return Authorization(existing["id"], existing.get("customer"), existing["status"])

        customer = self._customer_for_booking(email, booking_id)
        if customer is None:
            with self._errors("creating the customer"):
                customer = _as_dict(self._v1.customers.create(
                    params={"email": email, "metadata": {"booking_id": booking_id}},
                    options=self._options(f"{idempotency_key}:customer")))
        customer_id = customer["id"]

        saved = self._saved_payment_method(customer, payment_method)
        if saved is None:
            saved = self._attach(payment_method, customer_id, idempotency_key)
            with self._errors("saving the payment method on the customer"):
                # The default payment method and these metadata let charge_off_session find the
                # saved card from the id the caller keeps (a test id like pm_card_visa is cloned).
                self._v1.customers.update(customer_id, params={
                    "invoice_settings": {"default_payment_method": saved},
                    "metadata": {"saved_payment_method": saved, "requested_payment_method": payment_method},
                }, options=self._options(f"{idempotency_key}:save-card"))

        try:
            with self._errors("authorizing the payment"):
                pi = _as_dict(self._v1.payment_intents.create(params={
                    "amount": to_stripe(amount_cents, currency),
                    "currency": currency.lower(),
                    "customer": customer_id,
                    "payment_method": saved,
                    # Card only: no redirect-based method, so no return_url is needed to confirm.
                    "payment_method_types": ["card"],
                    "payment_method_options": {"card": {"setup_future_usage": "off_session"}},
                    "capture_method": "manual",
                    "confirm": True,
                    "metadata": {"booking_id": booking_id, "idempotency_key": idempotency_key,
                                 "kind": "authorization"},
                }, options=self._options(idempotency_key)))
        except PermanentError as e:
            if e.__cause__ is not None and isinstance(e.__cause__, stripe.CardError):
                self._bury_declined(e, e.__cause__, booking_id, idempotency_key)
            raise
        self._raise_decline(pi, "authorizing the payment")
        return Authorization(pi["id"], customer_id, pi["status"])

    def capture(self, intent_id: str, *, idempotency_key: str) -> MoneyMovement:
        """Capture an authorized PaymentIntent in full. Already captured: returns it unchanged.
        Raises PermanentError `intent_not_capturable` for a canceled or failed intent."""
        pi = self._retrieve_intent(intent_id)
        if pi["status"] == "requires_capture":
            try:
                with self._errors(f"capturing {intent_id}"):
                    pi = _as_dict(self._v1.payment_intents.capture(
                        intent_id, options=self._options(idempotency_key)))
            except PermanentError:
                # A concurrent or earlier attempt may have captured it just now: state decides.
                pi = self._retrieve_intent(intent_id)
                if pi["status"] not in ("succeeded", "processing"):
                    raise
        if pi["status"] not in ("succeeded", "processing"):
            raise PermanentError(
                "intent_not_capturable",
                f"PaymentIntent {intent_id} is {pi['status']}, not requires_capture: nothing was "
                "captured; authorize the payment again",
                intent_id=intent_id, status=pi["status"],
            )
        return MoneyMovement(pi["id"], self._amount_received(pi) or _ours(pi, pi["amount"]), pi["status"])

    def cancel_authorization(self, intent_id: str, *, idempotency_key: str) -> None:
        """Cancel an uncaptured PaymentIntent. Already cancelled counts as done. A captured one
        raises PermanentError `intent_already_captured` (refund it instead)."""
        pi = self._retrieve_intent(intent_id)
        if pi["status"] == "canceled":
            return
        if pi["status"] == "succeeded":
            raise PermanentError(
                "intent_already_captured",
                f"PaymentIntent {intent_id} was already captured, so it cannot be cancelled; refund it instead",
                intent_id=intent_id,
            )
        try:
            with self._errors(f"cancelling {intent_id}"):
                self._v1.payment_intents.cancel(intent_id, options=self._options(idempotency_key))
        except PermanentError:
            # Cancelled meanwhile (Stripe and localstripe answer 400 for a second cancel).
            if self._retrieve_intent(intent_id)["status"] != "canceled":
                raise

    def charge_off_session(self, *, amount_cents: int, currency: str, customer_id: str,
                           payment_method: str, booking_id: str, idempotency_key: str) -> MoneyMovement:
        """Charge the customer's saved card without the customer present (reschedule fees).

        `payment_method` may be the id the caller booked with (e.g. `pm_card_visa`): it resolves
        to the card `authorize` saved on the customer; any other id is attached first. A key
        already used returns that charge (or raises its decline again); never charges twice.
        """
        existing = self._find_intent(booking_id, idempotency_key)
        if existing is not None:
            self._check_same_request(existing, amount_cents, currency, idempotency_key)
            self._raise_decline(existing, "charging the saved card")
            return MoneyMovement(existing["id"], _ours(existing, existing["amount"]), existing["status"])

        with self._errors(f"reading customer {customer_id}"):
            customer = _as_dict(self._v1.customers.retrieve(customer_id))
        card = self._saved_payment_method(customer, payment_method)
        if card is None:
            card = self._attach(payment_method, customer_id, idempotency_key)

        try:
            with self._errors("charging the saved card"):
                pi = _as_dict(self._v1.payment_intents.create(params={
                    "amount": to_stripe(amount_cents, currency),
                    "currency": currency.lower(),
                    "customer": customer_id,
                    "payment_method": card,
                    "payment_method_types": ["card"],
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"booking_id": booking_id, "idempotency_key": idempotency_key,
                                 "kind": "off_session_charge"},
                }, options=self._options(idempotency_key)))
        except PermanentError as e:
            if e.__cause__ is not None and isinstance(e.__cause__, stripe.CardError):
                self._bury_declined(e, e.__cause__, booking_id, idempotency_key)
            raise
        self._raise_decline(pi, "charging the saved card")
        return MoneyMovement(pi["id"], _ours(pi, pi["amount"]), pi["status"])

    def refund(self, intent_id: str, *, amount_cents: int, idempotency_key: str) -> MoneyMovement:
        """Refund part of a captured PaymentIntent; metadata carries the key. A key already used
        returns that refund. The caller guards the refundable limit (localstripe does not)."""
        pi = self._retrieve_intent(intent_id)
        existing = self._refund_with_key(pi, idempotency_key)
        if existing is not None:
            if existing.amount_cents != amount_cents:
                raise PermanentError(
                    "stripe_idempotency_conflict",
                    f"refund key {idempotency_key} was already used for {existing.amount_cents} cents "
                    f"({existing.object_id}), not {amount_cents}; use a new key for a new refund",
                )
            return existing
        with self._errors(f"refunding {intent_id}"):
            refund = _as_dict(self._v1.refunds.create(params={
                "payment_intent": intent_id,
                "amount": to_stripe(amount_cents, pi["currency"]),
                "metadata": {"idempotency_key": idempotency_key},
            }, options=self._options(idempotency_key)))
        return MoneyMovement(refund["id"], _ours(pi, refund["amount"]), refund.get("status") or "succeeded")

    def find_refund(self, intent_id: str, idempotency_key: str) -> MoneyMovement | None:
        """The refund of this intent whose metadata carries the key, or None."""
        return self._refund_with_key(self._retrieve_intent(intent_id), idempotency_key)

    def _refund_with_key(self, pi: dict, idempotency_key: str) -> MoneyMovement | None:
        for refund in self._list_refunds(pi):
            if _metadata(refund).get("idempotency_key") == idempotency_key:
                return MoneyMovement(refund["id"], _ours(pi, refund["amount"]), refund.get("status") or "succeeded")
        return None

    def find_charge(self, booking_id: str, idempotency_key: str) -> MoneyMovement | None:
        """The PaymentIntent (authorization or off-session charge) of this booking whose metadata
        carries the key, or None. Its status says what became of it (e.g. `canceled`)."""
        pi = self._find_intent(booking_id, idempotency_key)
        if pi is None:
            return None
        return MoneyMovement(pi["id"], _ours(pi, pi["amount"]), pi["status"])

    def find_authorization(self, booking_id: str, idempotency_key: str) -> Authorization | None:
        """The authorization made earlier with this key, or None. Unlike the base class's version
        it keeps the intent's customer (needed later for off-session fees). The status is the
        intent's own: anything but `requires_capture` is not a usable authorization (a declined
        attempt is `canceled`; `authorize` with the same key raises its decline again)."""
        pi = self._find_intent(booking_id, idempotency_key)
        if pi is None:
            return None
        return Authorization(pi["id"], pi.get("customer"), pi["status"])

    def intent_summary(self, intent_id: str) -> dict:
        """For reconciliation: {"status", "amount_received", "refunds": [{"id", "amount",
        "status"}]}, refunds newest first as Stripe lists them."""
        pi = self._retrieve_intent(intent_id)
        return {
            "status": pi["status"],
            "amount_received": self._amount_received(pi),
            "refunds": [{"id": r["id"], "amount": _ours(pi, r["amount"]), "status": r.get("status")}
                        for r in self._list_refunds(pi)],
        }

    def check(self) -> None:
        """Raise when the API cannot be reached (TransientError `stripe_unreachable`), the key is
        missing or refused (PermanentError), or the base does not answer like Stripe."""
        with self._errors("checking the Stripe API (GET /v1/balance)"):
            balance = self._v1.balance.retrieve()
        if _as_dict(balance).get("object") not in (None, "balance") or "available" not in _as_dict(balance):
            raise PermanentError(
                "stripe_unexpected_response",
                f"{self._api_base} answered GET /v1/balance, but not like Stripe; check STRIPE_API_BASE",
            )

    # -- guards ------------------------------------------------------------------------------------
    @staticmethod
    def _check_same_request(pi: dict, amount_cents: int, currency: str, idempotency_key: str) -> None:
        # Stripe refuses a reused key with other parameters; we do the same for the peer that does not.
        if int(pi["amount"]) != to_stripe(amount_cents, currency) or str(pi.get("currency", "")).lower() != currency.lower():
            raise PermanentError(
                "stripe_idempotency_conflict",
                f"idempotency key {idempotency_key} was already used for {pi['amount']} "
                f"{pi.get('currency')} ({pi['id']}), not {amount_cents} {currency.lower()}; "
                "use a new key for a different payment",
                intent_id=pi["id"],
            )
