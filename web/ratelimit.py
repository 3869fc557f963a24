"""Rate limiting of unknown tokens per client address (the `limits` library).

Storage is Redis when BROKER_URL is a Redis URL (so every web process shares one count), memory
otherwise. An address that tried too many unknown or forged tokens gets 429 on every token page
until its window passes: guessing tokens is then hopeless, and a genuine link works again soon.
"""
from __future__ import annotations

import logging
import threading

from fastapi import HTTPException, Request
from limits import parse, storage, strategies

from .deps import client_address

log = logging.getLogger("sessionpack.web.ratelimit")
UNKNOWN_TOKENS = parse("20/minute")
_NAMESPACE = "sessionpack-unknown-token"


class TokenLimiter:
    def __init__(self, broker_url: str):
        uri = broker_url if broker_url.startswith(("redis://", "rediss://")) else "memory://"
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(uri))

    def blocked(self, address: str) -> bool:
        try:
            return not self._limiter.test(UNKNOWN_TOKENS, _NAMESPACE, address)
        except Exception as exc:  # the limit store is down: serve pages rather than refuse everyone
            log.warning("rate limit store unavailable: %s", exc)
            return False

    def record_unknown(self, address: str) -> None:
        try:
            self._limiter.hit(UNKNOWN_TOKENS, _NAMESPACE, address)
        except Exception as exc:
            log.warning("rate limit store unavailable: %s", exc)


_lock = threading.Lock()


def limiter_for(request: Request) -> TokenLimiter:
    state = request.app.state
    if getattr(state, "token_limiter", None) is None:
        with _lock:
            if getattr(state, "token_limiter", None) is None:
                state.token_limiter = TokenLimiter(state.container_holder.get().settings.broker_url)
    return state.token_limiter


def resolve_token(request: Request, verify, token: str):
    """`verify(token)` (a session id or None) under the unknown-token limit: 429 when the client
    tried too many unknown tokens, 404 (and one more counted) when this one is unknown."""
    limiter, address = limiter_for(request), client_address(request)
    if limiter.blocked(address):
        raise HTTPException(status_code=429, detail="too many unknown tokens")
    found = verify(token)
    if found is None:
        limiter.record_unknown(address)
        raise HTTPException(status_code=404, detail="unknown token")
    return found


def open_link(request: Request, c, token: str, link_of) -> str:
    """The session id a customer link opens (`link_of(db, secret_key, token, now)` is
    `access.manage_link` or `access.meeting_link`), under the unknown-token limit: 404 or 429."""
    def verify(t: str) -> str | None:
        with c.session_factory() as db:
            link = link_of(db, c.settings.secret_key, t, c.clock())
        return link.session_id if link else None

    return resolve_token(request, verify, token)
