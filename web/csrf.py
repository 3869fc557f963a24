"""CSRF protection for every form: a signed double-submit token.

A random secret lives in a cookie (`sp_csrf`, HttpOnly, SameSite=Lax; on https `__Host-sp_csrf`,
which a sibling subdomain cannot set, so nobody can plant a secret whose signed token they hold);
each form carries `csrf_token`, that secret signed with SECRET_KEY (itsdangerous, timestamped). A POST is accepted
only when the field's signature is genuine, fresh, and matches the cookie: another site can make
the browser send the cookie but cannot read it, nor forge a signature over it.

Use in a router:  `form = Depends(csrf_form)`  (the form, already checked), and in a template:
`<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">`.
"""
from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "sp_csrf"
SECURE_COOKIE = "__Host-sp_csrf"  # browsers accept it only Secure, on Path=/, without a Domain
FIELD = "csrf_token"
MAX_AGE_SECONDS = 12 * 3600


def _serializer(request: Request) -> URLSafeTimedSerializer:
    secret = request.app.state.container_holder.get().settings.secret_key
    return URLSafeTimedSerializer(secret, salt="sessionpack/web/csrf/v1")


def _secure(request: Request) -> bool:
    public = request.app.state.container_holder.get().settings.public_base_url
    return request.url.scheme == "https" or public.startswith("https://")


def _cookie_name(request: Request) -> str:
    return SECURE_COOKIE if _secure(request) else COOKIE


def _cookie_secret(request: Request) -> str:
    """The browser's secret, or a new one (set on the response by the middleware)."""
    existing = getattr(request.state, "csrf_secret", None)
    if existing:
        return existing
    cookie = request.cookies.get(_cookie_name(request), "")
    if not (16 <= len(cookie) <= 100 and cookie.isascii()):
        cookie = secrets.token_urlsafe(32)
        request.state.csrf_new_secret = cookie
    request.state.csrf_secret = cookie
    return cookie


def csrf_token(request: Request) -> str:
    """The value of the form's hidden `csrf_token` field."""
    return _serializer(request).dumps(_cookie_secret(request))


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raise 400 unless `submitted` is a fresh token signed over this browser's cookie."""
    cookie = request.cookies.get(_cookie_name(request))
    if not cookie or not submitted or len(submitted) > 500:
        raise HTTPException(status_code=400, detail="csrf")
    try:
        signed = _serializer(request).loads(submitted, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        raise HTTPException(status_code=400, detail="csrf") from None
    if not isinstance(signed, str) or not hmac.compare_digest(signed.encode(), cookie.encode()):
        raise HTTPException(status_code=400, detail="csrf")


async def csrf_form(request: Request):
    """FastAPI dependency: the submitted form, after its CSRF token was checked (400 if not)."""
    form = await request.form()
    check_csrf(request, form.get(FIELD))
    return form


def set_csrf_cookie(request: Request, response) -> None:
    new = getattr(request.state, "csrf_new_secret", None)
    if new:
        secure = _secure(request)
        response.set_cookie(SECURE_COOKIE if secure else COOKIE, new, httponly=True, samesite="lax", secure=secure,
                            path="/", max_age=MAX_AGE_SECONDS)
