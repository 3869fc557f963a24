"""The web app's shared pieces: headers, CSRF, 404 page, body limit, unknown-token rate limit."""
from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.testclient import TestClient

from services.tokens import make_token
from web.app import create_app
from web.csrf import SECURE_COOKIE, csrf_form
from web.templating import render


@pytest.fixture
def app(container):
    return create_app(container)


@pytest.fixture
def client(app):
    return TestClient(app)


def test_health_and_security_headers(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.text == "ok"
    csp = r.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_unknown_address_is_a_plain_404_page(client):
    r = client.get("/nothing/here")
    assert r.status_code == 404
    assert "<h1>Page not found</h1>" in r.text
    assert "<script" not in r.text


def test_forged_manage_token_is_404_with_token_page_headers(client):
    r = client.get("/manage/ss_abc.forgedforgedforgedforgedforged")
    assert r.status_code == 404
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"


def test_unknown_tokens_are_rate_limited_per_address(client, container):
    for _ in range(20):
        assert client.get("/manage/ss_x.forgedforgedforgedforgedforged").status_code == 404
    assert client.get("/manage/ss_x.forgedforgedforgedforgedforged").status_code == 429
    # ...and a genuine token from that address waits too (guessing stays hopeless).
    good = make_token(container.settings.secret_key, "ss_whatever")
    assert client.get(f"/manage/{good}").status_code == 429


def _form_app(container):
    router = APIRouter()

    @router.get("/form")
    def form_page(request: Request):
        return render(request, "error.html", {"title": "t", "text": "t", "status": 200})

    @router.get("/token")
    def token(request: Request):
        from web.csrf import csrf_token
        from fastapi.responses import PlainTextResponse
        response = PlainTextResponse(csrf_token(request))
        from web.csrf import set_csrf_cookie
        set_csrf_cookie(request, response)
        return response

    @router.post("/form")
    def post(form=Depends(csrf_form)):
        return {"ok": form.get("x")}

    import sys, types
    module = types.ModuleType("web._test_form_router")
    module.router = router
    sys.modules[module.__name__] = module
    return create_app(container, routers=[module.__name__])


def test_csrf_double_submit(container):
    client = TestClient(_form_app(container), base_url="https://testserver")
    assert client.post("/form", data={"x": "1"}).status_code == 400  # no token, no cookie
    token = client.get("/token").text
    assert SECURE_COOKIE in client.cookies  # https: the __Host- name
    assert client.post("/form", data={"x": "1", "csrf_token": token}).json() == {"ok": "1"}
    assert client.post("/form", data={"x": "1", "csrf_token": token + "x"}).status_code == 400
    other = TestClient(_form_app(container), base_url="https://testserver")  # another browser: its own cookie
    other.get("/token")
    assert other.post("/form", data={"x": "1", "csrf_token": token}).status_code == 400


def test_request_body_limit(container):
    client = TestClient(_form_app(container), base_url="https://testserver")
    r = client.post("/form", content=b"x" * (300 * 1024), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_access_log_never_shows_a_token():
    import logging

    from web.logs import RedactTokenPaths

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "GET", "/manage/ss_abc.SECRETSECRET?tab=cancel", "1.1", 200), None)
    RedactTokenPaths().filter(record)
    assert "SECRET" not in record.getMessage() and "/manage/[token]?tab=cancel" in record.getMessage()
