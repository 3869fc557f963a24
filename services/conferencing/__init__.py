"""Conferencing providers behind one interface; `build_providers` picks them from settings."""
from __future__ import annotations

from .base import ConferencingProvider, MeetingDetails, MeetingRequest
from .builtin import BuiltinProvider
from .jitsi import JitsiProvider
from .requests import meeting_request, provider_for

__all__ = ["BuiltinProvider", "ConferencingProvider", "JitsiProvider", "MeetingDetails", "MeetingRequest",
           "build_providers", "meeting_request", "provider_for"]


def build_providers(settings) -> dict[str, ConferencingProvider]:
    """Every provider that can run with these settings, by name. Unconfigured ones are absent."""
    providers: dict[str, ConferencingProvider] = {
        "builtin": BuiltinProvider(settings.public_base_url, settings.secret_key),
        "jitsi": JitsiProvider(settings.jitsi_base_url, settings.secret_key),
    }
    try:  # the API adapters live in their own modules
        from .registry import api_providers
    except ImportError:  # pragma: no cover - only while the adapters are being written
        return providers
    providers.update(api_providers(settings))
    return providers
