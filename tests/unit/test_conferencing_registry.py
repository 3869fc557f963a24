"""Which providers run is decided by which credentials are set."""
from __future__ import annotations

from services.conferencing import build_providers
from services.conferencing.goto import GoToMeetingProvider
from services.conferencing.registry import api_providers
from services.conferencing.webex import WebexProvider
from services.conferencing.zoom import ZoomProvider
from tests.peers import base_settings


def test_no_credentials_no_api_providers():
    assert api_providers(base_settings()) == {}
    assert set(build_providers(base_settings())) == {"builtin", "jitsi"}  # no API, no credentials


def test_zoom_needs_all_three_credentials():
    assert api_providers(base_settings(zoom_account_id="a", zoom_client_id="b")) == {}


def test_every_configured_provider_is_built_under_its_contract_name():
    settings = base_settings(zoom_account_id="a", zoom_client_id="b", zoom_client_secret="c",
                             webex_token="w", goto_token="g")
    providers = build_providers(settings)
    assert set(providers) == {"builtin", "jitsi", "zoom", "webex", "gotomeeting"}
    assert isinstance(providers["zoom"], ZoomProvider)
    assert isinstance(providers["webex"], WebexProvider)
    assert isinstance(providers["gotomeeting"], GoToMeetingProvider)
    assert all(name == provider.name for name, provider in providers.items())
