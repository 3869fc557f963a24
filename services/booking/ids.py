"""Identifiers. A booking id is derived from its request_id, so the CLI can name the booking
before the worker has made it, and the same request always maps to the same booking."""
from __future__ import annotations

import base64
import hashlib
import secrets


def booking_id_for(request_id: str) -> str:
    digest = hashlib.sha256(b"sessionpack/booking:" + request_id.encode()).digest()
    return "bk_" + base64.b32encode(digest).decode().rstrip("=").lower()[:24]


# A request_id is stored under a key: the request_id itself (the broker, the CLI and keys that cover
# every page share that namespace), or `<page>/<request_id>` for an API key scoped to pages, so such
# a key can neither see nor block another page's request_ids. `/` is in no request_id or page slug.
KEY_SEPARATOR = "/"
MAX_KEY_LENGTH = 200  # the stored columns' width


def request_key(request_id: str, scope: str | None = None) -> str:
    """The idempotency key a request_id is stored under: scoped to a page, or global (None)."""
    return request_id if scope is None else f"{scope}{KEY_SEPARATOR}{request_id}"


def public_request_id(key: str) -> str:
    """The caller's request_id of a stored key (what the booking object shows)."""
    return key.rsplit(KEY_SEPARATOR, 1)[-1]


def new_session_id() -> str:
    return "ss_" + base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=").lower()
