"""Middleware every response goes through: security headers and a request body size limit.

Both are plain ASGI middleware (no buffering of responses, nothing per-route to forget).
"""
from __future__ import annotations

import json

# No script at all, from anywhere: the pages work without JavaScript. Styles only from our own
# stylesheet; forms post only to us; nobody may frame the pages.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]
DEFAULT_HEADERS = [(b"referrer-policy", b"same-origin")]
# Sent when PUBLIC_BASE_URL is https (the site is reached over TLS): browsers then refuse plain
# http for two years, so a manage link typed or followed as http:// is never sent in clear.
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
TOKEN_PATH_HEADERS = [(b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")]
# Large enough for any booking request or provider webhook, small enough to refuse a flood.
MAX_BODY_BYTES = 256 * 1024


class SecurityHeaders:
    """Adds CSP, nosniff and frame denial to every HTTP response (a route's own values win).
    Every response also defaults to `Referrer-Policy: same-origin`; whatever answers on a path
    holding a secret (web.logs.is_token_path) gets `no-referrer` and `Cache-Control: no-store`
    (token pages also set them themselves: web.templating.mark_token_page). When PUBLIC_BASE_URL
    is https, every response carries Strict-Transport-Security (`https`: None reads the settings
    on the first request, through the app's container)."""

    def __init__(self, app, https: bool | None = None):
        self.app = app
        self.https = https

    def _hsts(self, scope) -> list:
        if self.https is None:
            try:
                holder = scope["app"].state.container_holder
                self.https = holder.get().settings.public_base_url.lower().startswith("https://")
            except Exception:  # noqa: BLE001 - no container (a bare app in a test): no HSTS, ask again
                return []
        return [HSTS] if self.https else []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from .logs import is_token_path

        # Whatever answers on a secret address (a page, its redirects, the API's manage calls, an
        # error from a middleware) is never cached and never leaks the address in a Referer.
        extra = (TOKEN_PATH_HEADERS if is_token_path(scope.get("path", "")) else DEFAULT_HEADERS) + self._hsts(scope)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in HEADERS + extra:
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimit:
    """Refuses request bodies above `max_bytes` with 413: by Content-Length before reading, and
    by counting when the body is streamed without one."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    return await _too_large(scope, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(scope, send)


class _BodyTooLarge(Exception):
    pass


TOO_LARGE_TEXT = (f"What you sent is larger than this site accepts ({MAX_BODY_BYTES // 1024} KB); nothing was "
                  "changed. Go back, shorten the text you typed (a reason, for example) and send it again.")


async def _too_large(scope, send) -> None:
    """413: the JSON error object for machines (the API, incoming webhooks), the plain error page
    for a browser (a form on the customer's or the owner's pages)."""
    from .errors import wants_json_path

    if wants_json_path(scope.get("path", "")):
        body = json.dumps({"error": {"code": "body_too_large",
                                     "message": f"the request body is larger than {MAX_BODY_BYTES} bytes"}}).encode()
        content_type = b"application/json"
    else:
        from .templating import templates

        body = templates.get_template("error.html").render(
            title="Too large", text=TOO_LARGE_TEXT, status=413, page_title="Too large").encode()
        content_type = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
