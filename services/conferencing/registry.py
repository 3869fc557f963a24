"""Which API adapters run: every provider whose credentials are set in settings."""
from __future__ import annotations

from .base import ConferencingProvider
from .goto import GoToMeetingProvider
from .http import RetryPolicy
from .webex import WebexProvider
from .zoom import ZoomProvider


def api_providers(settings, *, retry: RetryPolicy | None = None) -> dict[str, ConferencingProvider]:
    """The configured API providers by name (`zoom`, `webex`, `gotomeeting`); a provider with
    missing credentials is absent, so a booking that needs it fails with a clear message rather
    than at the provider. Nothing connects here: each adapter opens its session on first use."""
    providers: dict[str, ConferencingProvider] = {}
    if settings.zoom_account_id and settings.zoom_client_id and settings.zoom_client_secret:
        providers["zoom"] = ZoomProvider(settings, retry=retry)
    if settings.webex_token:
        providers["webex"] = WebexProvider(settings, retry=retry)
    if settings.goto_token:
        providers["gotomeeting"] = GoToMeetingProvider(settings, retry=retry)
    return providers
