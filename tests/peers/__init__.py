"""Loopback stand-ins for the providers' REST APIs, and the settings that point adapters at them."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.conferencing.http import RetryPolicy
from core.settings import Settings

# Retries as in production, but in milliseconds: the tests check the policy, not the clock.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=5.0)


def base_settings(**overrides) -> Settings:
    """Settings built directly, never from the environment: no database or broker is touched."""
    fields = dict(
        var_dir=Path("var/test-peers"), database_url="sqlite://", broker_url="memory://",
        secret_key="test-secret", http_timeout_seconds=2.0,
    )
    fields.update(overrides)
    return Settings(**fields)


def peer_fixture(peer_class):
    """A `peer` fixture: a started `peer_class`, stopped after the test. Assign it in a test module
    as `peer = peer_fixture(ZoomPeer)`; fixtures are not shared through a conftest here."""

    @pytest.fixture
    def peer():
        with peer_class() as running:
            yield running

    return peer


def adapter_fixture(provider_class, name: str):
    """A fixture named `name`: `provider_class` pointed at the test's `peer`, with FAST_RETRY."""

    @pytest.fixture(name=name)
    def adapter(peer):
        return provider_class(peer.settings(), retry=FAST_RETRY)

    return adapter
