"""Per-session manage tokens: an unguessable HMAC bound to one session id.

A token is `<session_id>.<signature>`; the signature is HMAC-SHA256 over the session id with
the SECRET_KEY, so nobody can make one for another session, and a changed character breaks it.
Tokens are never logged; `redact` hides them in any text that may be.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re

_PURPOSE = b"sessionpack/manage/v1:"


def _signature(secret_key: str, session_id: str) -> str:
    digest = hmac.new(secret_key.encode(), _PURPOSE + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(secret_key: str, session_id: str) -> str:
    return f"{session_id}.{_signature(secret_key, session_id)}"


def token_session_id(secret_key: str, token: str) -> str | None:
    """The session id a genuine token was made for, or None for a forged or malformed one."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 200 or not token.isascii():
        return None  # (compare_digest refuses non-ASCII text, and no genuine token has any)
    session_id, signature = token.split(".")
    if not session_id.startswith("ss_"):
        return None
    if hmac.compare_digest(signature, _signature(secret_key, session_id)):
        return session_id
    return None


_TOKEN_RE = re.compile(r"ss_[A-Za-z0-9]+\.[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """Hide anything shaped like a manage token."""
    return _TOKEN_RE.sub("[token]", text)
