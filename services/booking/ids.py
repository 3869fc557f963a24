"""Identifiers. A booking id is derived from its request_id, so the CLI can name the booking
before the worker has made it, and the same request always maps to the same booking."""
from __future__ import annotations

import base64
import hashlib
import secrets


def booking_id_for(request_id: str) -> str:
    digest = hashlib.sha256(b"sessionpack/booking:" + request_id.encode()).digest()
    return "bk_" + base64.b32encode(digest).decode().rstrip("=").lower()[:24]


def new_session_id() -> str:
    return "ss_" + base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=").lower()
