"""The `PaymentGateway` interface and its result types. The Stripe adapter is in stripe_gateway.py.

Every call takes an idempotency key that we derive deterministically (e.g. `bk_x-authorize`),
and the gateway also records it in the Stripe object's metadata, because a test peer
(localstripe) ignores the header: `find_*` then recovers an object whose creation we did not
record, so a redelivered task never moves money twice.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

from .errors import OperationFailed


def payments_available(c) -> bool:
    """Whether the container's gateway can take payments (a wrapper without the property, such
    as a test double around the real gateway, answers for it)."""
    return bool(getattr(c.payments, "configured", True))


def payment_unavailable(what: str) -> OperationFailed:
    return OperationFailed("payment_unavailable", (
        f"{what} has a price, but this service takes no payments: STRIPE_API_KEY is not set "
        "(set it, with STRIPE_API_BASE for a local Stripe-compatible server), or remove the "
        "event type's payment"))


@dataclass(frozen=True)
class Authorization:
    intent_id: str
    customer_id: str | None
    status: str  # Stripe's PaymentIntent status, e.g. requires_capture


@dataclass(frozen=True)
class MoneyMovement:
    object_id: str  # pi_... for captures and fees, re_... for refunds
    amount_cents: int
    status: str


class PaymentGateway(abc.ABC):
    """Errors: `PermanentError` (declined, invalid: code e.g. `card_declined`) or `TransientError`."""

    @property
    def configured(self) -> bool:
        """Whether this gateway can move money at all (an adapter without credentials cannot):
        a price is refused at intake, before anything is held, when it cannot."""
        return True

    @abc.abstractmethod
    def authorize(self, *, amount_cents: int, currency: str, payment_method: str, email: str,
                  booking_id: str, idempotency_key: str) -> Authorization:
        """Create a Customer, attach the PaymentMethod (saved for later off-session fees) and a
        manual-capture PaymentIntent confirmed for the amount."""

    @abc.abstractmethod
    def capture(self, intent_id: str, *, idempotency_key: str) -> MoneyMovement:
        """Capture an authorized PaymentIntent in full."""

    @abc.abstractmethod
    def cancel_authorization(self, intent_id: str, *, idempotency_key: str) -> None:
        """Cancel an uncaptured PaymentIntent. Already cancelled counts as done."""

    @abc.abstractmethod
    def charge_off_session(self, *, amount_cents: int, currency: str, customer_id: str,
                           payment_method: str, booking_id: str, idempotency_key: str) -> MoneyMovement:
        """Charge a saved card without the customer present (reschedule fees)."""

    @abc.abstractmethod
    def refund(self, intent_id: str, *, amount_cents: int, idempotency_key: str) -> MoneyMovement:
        """Refund part of a captured PaymentIntent. The caller guards the refundable limit."""

    @abc.abstractmethod
    def find_refund(self, intent_id: str, idempotency_key: str) -> MoneyMovement | None:
        """A refund made earlier with this key (read from its metadata), or None."""

    @abc.abstractmethod
    def find_charge(self, booking_id: str, idempotency_key: str) -> MoneyMovement | None:
        """A PaymentIntent made earlier with this key (read from its metadata), or None."""

    def find_authorization(self, booking_id: str, idempotency_key: str) -> Authorization | None:
        """The authorization made earlier with this key, recovered from Stripe, or None."""
        found = self.find_charge(booking_id, idempotency_key)
        if found is None:
            return None
        return Authorization(intent_id=found.object_id, customer_id=None, status=found.status)

    @abc.abstractmethod
    def intent_summary(self, intent_id: str) -> dict:
        """For reconciliation: {"status", "amount_received", "refunds": [{"id", "amount", "status"}]}."""

    def check(self) -> None:
        """Raise when the API cannot be reached or the key is refused (for `doctor`)."""
