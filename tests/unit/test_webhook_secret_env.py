"""A webhook endpoint's signing secret is its own: naming one of sessionpack's secrets (SECRET_KEY,
the Stripe key, the database URL...) as `secret_env` is refused by `config apply`, since every
receiver must hold the secret it verifies with (review of the webhooks landing)."""
from __future__ import annotations

import pytest

from services.webhooks import check_endpoints


@pytest.mark.parametrize("env", ["SECRET_KEY", "secret_key", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "DATABASE_URL",
                                 "BROKER_URL", "SMTP_URL", "ZOOM_CLIENT_SECRET"])
def test_sessionpacks_own_secrets_are_no_webhook_secret(env):
    problems = check_endpoints([{"url": "https://x.example/h", "secret_env": env, "events": ["booking.confirmed"]}],
                               "booking_pages[0]")
    assert problems and "secret_env" in problems[0] and "own secrets" in problems[0]


def test_a_secret_of_its_own_is_fine():
    assert check_endpoints([{"url": "https://x.example/h", "secret_env": "COACH_WEBHOOK_SECRET",
                             "events": ["booking.confirmed"]}], "booking_pages[0]") == []
