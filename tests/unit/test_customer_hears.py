"""The customer always hears, in their words: the "we could not book" email names the real reason
and says nothing was charged, whatever the step; a refused reschedule mentions a fee only when
one was charged. Also the intake's canonical body and fingerprint (pure)."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from services.booking.intake import canonical_request, fingerprint
from services.booking.request import parse_request
from services.errors import OperationFailed, PermanentError
from services.lifecycle.reschedule import refusal_reason
from services.notifications import compose
from tests.unit.notification_samples import sample_view


def failed_email(failure: dict, price_cents: int = 15000):
    view = replace(sample_view(3, price_cents), status="failed", paid_cents=0, failure=failure)
    (spec,) = compose.booking_failed(view)
    assert spec.kind == "booking_failed_customer" and spec.subject.startswith("We could not book")
    return spec


@pytest.mark.parametrize("failure, reason", [
    ({"step": "validate", "code": "slot_unavailable",
      "message": "slot 2026-12-07T15:00:00Z was just taken by another booking; pick another time (`sessionpack slots`)"},
     "one of the times you chose was taken by another booking just before yours"),
    ({"step": "authorize", "code": "card_declined", "message": "Your card was declined. (while authorizing)"},
     "your card was declined or could not be used for this payment"),
    ({"step": "conferencing", "code": "zoom_unavailable", "message": "Zoom failed on POST /users/me/meetings (HTTP 503)"},
     "we could not set up the online meetings for your sessions (the video-conferencing service was unavailable)"),
    ({"step": "capture", "code": "stripe_unreachable", "message": "cannot reach Stripe"},
     "the payment could not be completed"),
    ({"step": "validate", "code": "limit_reached", "message": "max_bookings_per_day"},
     "the day or week you chose is already fully booked"),
    ({"step": "hold", "code": "internal_error", "message": "RuntimeError: boom"}, "a service we rely on was unavailable"),
])
def test_we_could_not_book_names_the_reason_in_the_customers_words(failure, reason):
    spec = failed_email(failure)
    assert f"Reason: {reason}" in spec.text and reason in spec.html
    assert "nothing was booked and nothing was charged" in spec.text
    assert "nothing was booked and nothing was charged" in spec.html
    # The operator's message (codes, commands, provider answers) never reaches the customer.
    assert failure["message"] not in spec.text and "sessionpack" not in spec.text.split("Reason:")[1].split("\n")[0]


def test_we_could_not_book_says_nothing_was_charged_for_a_free_booking_too():
    spec = failed_email({"step": "validate", "code": "slot_unavailable", "message": "taken"}, price_cents=0)
    assert "nothing was booked and nothing was charged." in spec.text
    assert "held on your card" not in spec.text


def test_refused_reschedule_mentions_the_fee_only_when_one_was_charged():
    taken = OperationFailed("slot_unavailable", "slot 2026-12-09T15:00:00Z was just taken by another booking")
    assert refusal_reason(taken, charged=True) == "someone else booked that time while we were taking the fee"
    assert refusal_reason(taken, charged=False) == "someone else booked that time just before we could move your session"
    declined = PermanentError("card_declined", "Your card was declined.")
    assert not re.search(r"\bfees?\b", refusal_reason(declined, charged=False))


def test_refused_reschedule_email_without_a_fee_says_nothing_about_one():
    view = sample_view(3, 15000)
    session_id = view.sessions[1].id
    taken = OperationFailed("slot_unavailable", "taken")
    (spec,) = compose.reschedule_failed(view, session_id, 0, "chg_1", why=refusal_reason(taken, charged=False))
    assert "just before we could move your session" in spec.text
    assert not re.search(r"\bfees?\b", spec.text + spec.html, re.I)
    (charged,) = compose.reschedule_failed(view, session_id, 500, "chg_2", why=refusal_reason(taken, charged=True))
    assert "while we were taking the fee" in charged.text and "We refunded the rescheduling fee of" in charged.text


REQUEST = {
    "request_id": "web-7f3c2a", "booking_page": "dana", "event_type": "consult-2",
    "customer": {"name": "Sam Lee", "email": "sam@example.org", "timezone": "Europe/Berlin"},
    "slots": ["2026-12-07T14:00:00Z", "2026-12-09T14:00:00Z"], "payment_method": "pm_card_visa",
}


def fp(data: dict) -> str:
    return fingerprint(canonical_request(*parse_request(data)))


def test_the_same_request_written_differently_has_one_fingerprint():
    same = dict(REQUEST, slots=["2026-12-09T15:00:00+01:00", "2026-12-07T14:00:00+00:00"],
                customer=dict(REQUEST["customer"], name="  Sam Lee ", email="sam@EXAMPLE.ORG"))
    assert fp(same) == fp(REQUEST)
    assert len(fp(REQUEST)) == 64


@pytest.mark.parametrize("change", [
    {"customer": {"name": "Eve", "email": "eve@example.net", "timezone": "UTC"}},
    {"slots": ["2026-12-07T14:00:00Z", "2026-12-10T14:00:00Z"]},
    {"payment_method": "pm_card_mastercard"},
    {"event_type": "consult-3"},
])
def test_another_body_has_another_fingerprint(change):
    assert fp(dict(REQUEST, **change)) != fp(REQUEST)
