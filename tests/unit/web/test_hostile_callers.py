"""Every entry point of the web process tried once as a hostile caller would (review of issues
16-19): tokens of one booking aimed at another, the meeting-info token used to change things,
forms without or with another browser's CSRF token, API keys outside their pages or without
admin, owners reaching into another owner's bookings (GETs, POSTs, CSV), login redirects off
site, oversized bodies, token paths in the access log, and a genuinely signed Stripe event about
a payment that is not ours. Each test says what must be refused and that nothing changed."""
from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services import apikeys
from services.console import accounts
from services.tokens import make_manage_token, make_meeting_token
from tests.support import apply_config, booking_request, daily_slots, drain, package_config
from web.app import create_app

from .conftest import csrf_of

PASSWORD = "correct horse battery"


def two_pages_config(price: str = "150.00") -> dict:
    cfg = package_config(3, price=price)
    cfg["owners"].append({"id": "lee", "name": "Lee", "email": "lee@example.com", "timezone": "UTC"})
    cfg["booking_pages"].append(dict(cfg["booking_pages"][0], slug="other", owner="lee", name="Other page"))
    return cfg


def _book(c, page: str, days: int, email: str) -> dict:
    from models import Booking
    from services.booking import submit_booking
    from services.booking.views import booking_object

    request = booking_request(daily_slots(c.clock() + timedelta(days=days), 3, "10:00"),
                              payment_method="pm_card_visa", email=email)
    request["booking_page"] = page
    booking_id = submit_booking(c, request)
    drain(c)
    with c.session_factory() as db:
        shown = booking_object(db, db.get(Booking, booking_id), c.settings)
    assert shown["status"] == "confirmed", shown["failure"]
    return shown


@pytest.fixture
def two(web):
    """Kim's booking A on page `coach`, Lee's booking B on page `other`; both owners can sign in."""
    apply_config(web, two_pages_config())
    a = _book(web, "coach", 3, "ana@example.org")
    b = _book(web, "other", 6, "bob@example.org")
    accounts.set_password(web, "kim", PASSWORD)
    accounts.set_password(web, "lee", PASSWORD + "!")
    return web, a, b


def statuses(c, booking_id: str) -> list[str]:
    from models import Session

    with c.session_factory() as db:
        return [s for (s,) in db.execute(select(Session.status).where(Session.booking_id == booking_id)
                                         .order_by(Session.number))]


def outbox_size(c) -> int:
    from models import TaskOutbox

    with c.session_factory() as db:
        return db.execute(select(func.count()).select_from(TaskOutbox)).scalar_one()


# -- customer pages ------------------------------------------------------------------------------


def test_a_manage_token_of_booking_a_cannot_cancel_or_move_sessions_of_booking_b(two, client):
    c, a, b = two
    token_a = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    csrf = csrf_of(client.get(f"/manage/{token_a}?tab=cancel").text)
    before = outbox_size(c)
    r = client.post(f"/manage/{token_a}/cancel", data={"csrf_token": csrf, "session_ids": [b["sessions"][0]["id"]]})
    assert r.status_code == 404
    r = client.post(f"/manage/{token_a}/cancel", data={"csrf_token": csrf, "session_ids": [a["sessions"][1]["id"],
                                                                                           b["sessions"][0]["id"]]})
    assert r.status_code == 404
    r = client.post(f"/manage/{token_a}/reschedule", data={"csrf_token": csrf, "session_id": b["sessions"][0]["id"],
                                                           "to": b["sessions"][0]["start"]})
    assert r.status_code == 404
    assert outbox_size(c) == before and statuses(c, b["id"]) == ["confirmed"] * 3


def test_the_meeting_info_token_opens_no_manage_page_and_cancels_nothing(two, client):
    c, a, _ = two
    sid = a["sessions"][0]["id"]
    info = make_meeting_token(c.settings.secret_key, sid)
    good = make_manage_token(c.settings.secret_key, sid)
    csrf = csrf_of(client.get(f"/manage/{good}?tab=cancel").text)
    assert client.get(f"/manage/{info}").status_code == 404
    r = client.post(f"/manage/{info}/cancel", data={"csrf_token": csrf, "session_ids": [sid]})
    assert r.status_code == 404
    # ... nor the other way round: the manage token is no meeting link.
    assert client.get(f"/meeting/{good}").status_code == 404
    assert statuses(c, a["id"]) == ["confirmed"] * 3


def test_a_form_without_csrf_or_with_another_browsers_token_is_refused(two, client):
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    sid = a["sessions"][0]["id"]
    stranger = TestClient(create_app(c), base_url="https://testserver")
    foreign_csrf = csrf_of(stranger.get(f"/manage/{token}?tab=cancel").text)
    client.get(f"/manage/{token}?tab=cancel")  # the victim's browser has its own cookie
    assert client.post(f"/manage/{token}/cancel", data={"session_ids": [sid]}).status_code == 400
    assert client.post(f"/manage/{token}/cancel", data={"session_ids": [sid], "csrf_token": foreign_csrf}).status_code == 400
    assert client.post(f"/manage/{token}/cancel", data={"session_ids": [sid], "csrf_token": "x" * 10_000}).status_code == 400
    assert statuses(c, a["id"]) == ["confirmed"] * 3


def test_oversized_bodies_are_refused_before_they_are_read(two, client):
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    r = client.post(f"/manage/{token}/cancel", content=b"a=" + b"x" * 400_000,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    r = client.post("/owner/login", content=b"x" * 400_000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_a_form_too_large_gets_a_page_and_the_api_its_error_object(two, client):
    # A browser posting a form on the customer's or the owner's pages reads an HTML page; the API
    # (and the incoming webhooks) keep their JSON error object.
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    form = {"content-type": "application/x-www-form-urlencoded"}
    for path in (f"/manage/{token}/cancel", "/owner/login"):
        r = client.post(path, content=b"a=" + b"x" * 400_000, headers=form)
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), path
        assert "<h1>Too large</h1>" in r.text and "nothing was changed" in r.text and "body_too_large" not in r.text
        assert r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    streamed = client.post("/owner/login", content=iter([b"a=" + b"x" * 200_000, b"x" * 200_000]), headers=form)
    assert streamed.status_code == 413 and streamed.headers["content-type"].startswith("text/html")
    key = make_key(c, "sizes-json")
    for path in ("/api/v1/bookings", "/webhooks/stripe"):
        r = client.post(path, headers=bearer(key), content=b"{" + b" " * 400_000 + b"}")
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", path


# -- the HTTP API ------------------------------------------------------------------------------------


def make_key(c, name, pages=(), admin=False) -> str:
    with c.uow() as uow:
        key = apikeys.create_key(uow, name, pages, admin, now=c.clock())["key"]
        uow.commit()
    return key


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_of_page_x_neither_reads_nor_changes_page_ys_bookings(two, client):
    c, a, b = two
    coach = make_key(c, "coach-only", ["coach"])
    coach_admin = make_key(c, "coach-admin", ["coach"], admin=True)
    token_b = make_manage_token(c.settings.secret_key, b["sessions"][0]["id"])
    token_a = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    before = outbox_size(c)
    # a booking of another page is answered as an unknown one (its id follows from its request_id)
    assert client.get(f"/api/v1/bookings/{b['id']}", headers=bearer(coach)).status_code == 404
    assert client.get(f"/api/v1/manage/{token_b}", headers=bearer(coach)).status_code == 403
    assert client.post(f"/api/v1/manage/{token_b}/cancel", headers=bearer(coach),
                       json={"session_ids": [b["sessions"][0]["id"]]}).status_code == 403
    # the key's own booking's token, naming the other booking's session
    r = client.post(f"/api/v1/manage/{token_a}/cancel", headers=bearer(coach), json={"session_ids": [b["sessions"][0]["id"]]})
    assert r.status_code == 404
    r = client.post(f"/api/v1/manage/{token_a}/reschedule", headers=bearer(coach),
                    json={"session_id": b["sessions"][0]["id"], "to": b["sessions"][0]["start"]})
    assert r.status_code == 404
    for key, by_booking in ((coach, 403), (coach_admin, 404)):  # 403: not an admin key, asked first
        assert client.post(f"/api/v1/sessions/{b['sessions'][0]['id']}/cancel", headers=bearer(key), json={}).status_code == 403
        assert client.post(f"/api/v1/sessions/{b['sessions'][0]['id']}/reschedule", headers=bearer(key),
                           json={"to": b["sessions"][0]["start"]}).status_code == 403
        assert client.post(f"/api/v1/bookings/{b['id']}/refunds", headers=bearer(key), json={"amount": "1.00"}).status_code == by_booking
        assert client.post(f"/api/v1/bookings/{b['id']}/approve", headers=bearer(key)).status_code == by_booking
        assert client.post(f"/api/v1/bookings/{b['id']}/decline", headers=bearer(key)).status_code == by_booking
    other_request = booking_request(daily_slots(c.clock() + timedelta(days=9), 3, "10:00"), payment_method="pm_card_visa")
    other_request["booking_page"] = "other"
    assert client.post("/api/v1/bookings", headers=bearer(coach), json=other_request).status_code == 403
    assert outbox_size(c) == before and statuses(c, b["id"]) == ["confirmed"] * 3


def test_a_key_that_is_not_admin_cannot_act_as_admin_on_its_own_page(two, client):
    c, a, _ = two
    coach = make_key(c, "coach-plain", ["coach"])
    everything = make_key(c, "all-plain")
    before = outbox_size(c)
    for key in (coach, everything):
        for path, body in ((f"/api/v1/sessions/{a['sessions'][0]['id']}/cancel", {}),
                           (f"/api/v1/sessions/{a['sessions'][0]['id']}/reschedule", {"to": a["sessions"][0]["start"]}),
                           (f"/api/v1/bookings/{a['id']}/refunds", {"amount": "1.00"}),
                           (f"/api/v1/bookings/{a['id']}/approve", {}), (f"/api/v1/bookings/{a['id']}/decline", {})):
            r = client.post(path, headers=bearer(key), json=body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required", path
    # The meeting-info token is no manage token on the API either.
    info = make_meeting_token(c.settings.secret_key, a["sessions"][0]["id"])
    assert client.post(f"/api/v1/manage/{info}/cancel", headers=bearer(coach),
                       json={"session_ids": [a["sessions"][0]["id"]]}).status_code == 404
    assert outbox_size(c) == before and statuses(c, a["id"]) == ["confirmed"] * 3


def test_api_bodies_and_strings_are_bounded(two, client):
    c, a, _ = two
    key = make_key(c, "all", admin=True)
    r = client.post("/api/v1/bookings", headers=bearer(key), content=b"{" + b" " * 70_000 + b"}")
    assert r.status_code == 413
    r = client.post(f"/api/v1/bookings/{a['id']}/refunds", headers=bearer(key),
                    json={"amount": "1.00", "reason": "x" * 5000})
    assert r.status_code == 422
    r = client.post(f"/api/v1/bookings/{a['id']}/refunds", headers=bearer(key), json={"amount": "1.00", "admin": False})
    assert r.status_code == 422  # unknown fields refused
    assert client.get("/api/v1/bookings/" + "b" * 5000, headers=bearer(key)).status_code in (404, 422)
    deep = "[" * 100_000 + "]" * 100_000
    assert client.post("/api/v1/bookings", headers=bearer(key), content=deep.encode()[:60_000]).status_code == 422


# -- the owner console ----------------------------------------------------------------------------


def sign_in(client, login, password):
    page = client.get("/owner/login")
    r = client.post("/owner/login", data={"login": login, "password": password, "csrf_token": csrf_of(page.text),
                                          "next": "/owner/activity"})
    assert r.status_code == 303
    return r


@pytest.fixture
def lee(two):
    c = two[0]
    client = TestClient(create_app(c), base_url="https://testserver", follow_redirects=False)
    sign_in(client, "lee", PASSWORD + "!")
    return client


def test_an_owner_cannot_read_or_act_on_another_owners_booking_by_any_route(two, lee):
    c, a, b = two
    csrf = csrf_of(lee.get("/owner/activity").text)
    sid = a["sessions"][0]["id"]
    before = outbox_size(c)
    assert lee.get(f"/owner/bookings/{a['id']}").status_code == 403
    assert lee.get(f"/owner/bookings/{a['id']}/reschedule", params={"session": sid}).status_code == 403
    assert lee.get(f"/owner/bookings/{a['id']}/changes/ch_1").status_code == 403
    for path, data in (("cancel", {"session_ids": [sid]}), ("reschedule", {"session_id": sid, "to": a["sessions"][0]["start"]}),
                       ("refund", {"amount": "1.00"}), ("decide", {"decision": "approve"}),
                       ("submit", {"action": "cancel", "session_ids": [sid], "with_refund": "yes"}),
                       ("submit", {"action": "refund", "amount": "1.00"}),
                       ("submit", {"action": "reschedule", "session_id": sid, "to": a["sessions"][0]["start"]}),
                       ("submit", {"action": "approve"})):
        r = lee.post(f"/owner/bookings/{a['id']}/{path}", data={**data, "csrf_token": csrf})
        assert r.status_code == 403, (path, data)
    # Through Lee's own booking's URL, naming Kim's sessions.
    for data in ({"action": "cancel", "session_ids": [sid], "with_refund": "yes"},
                 {"action": "reschedule", "session_id": sid, "to": a["sessions"][0]["start"]}):
        r = lee.post(f"/owner/bookings/{b['id']}/submit", data={**data, "csrf_token": csrf})
        assert r.status_code in (200, 400, 409) and "not this booking" in r.text
    # Lee's ledger and stream name none of Kim's bookings.
    ledger = lee.get("/owner/money/ledger.csv")
    assert ledger.status_code == 200 and b["id"] in ledger.text and a["id"] not in ledger.text
    assert a["id"] not in lee.get("/owner/activity", params={"page": "coach"}).text
    assert outbox_size(c) == before and statuses(c, a["id"]) == ["confirmed"] * 3


def test_owner_posts_need_the_csrf_token_of_the_owners_own_browser(two, lee):
    c, a, b = two
    stranger = TestClient(create_app(c), base_url="https://testserver")
    foreign = csrf_of(stranger.get("/owner/login").text)
    sid = b["sessions"][0]["id"]
    for data in ({"action": "cancel", "session_ids": [sid], "with_refund": "yes"},
                 {"action": "cancel", "session_ids": [sid], "with_refund": "yes", "csrf_token": foreign}):
        assert lee.post(f"/owner/bookings/{b['id']}/submit", data=data).status_code == 400
    assert statuses(c, b["id"]) == ["confirmed"] * 3


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "/owner\\@evil",
                                    "http:/evil.example", "/owner/../\\evil", "javascript:alert(1)",
                                    "/owner/x\r\nSet-Cookie: a=b"])
def test_login_next_never_leaves_the_console(two, target):
    c = two[0]
    client = TestClient(create_app(c), base_url="https://testserver", follow_redirects=False)
    page = client.get("/owner/login", params={"next": target})
    r = client.post("/owner/login", data={"login": "kim", "password": PASSWORD, "csrf_token": csrf_of(page.text),
                                          "next": target})
    location = r.headers["location"]
    assert r.status_code == 303 and location.startswith("/owner/") and not location.startswith("//")
    assert "\r" not in location and "\n" not in location and "set-cookie: a" not in str(r.headers).lower()
    # signed in: the login page's GET redirect too
    again = client.get("/owner/login", params={"next": target})
    assert again.headers["location"].startswith("/owner/") and "\n" not in again.headers["location"]


def test_owner_cookie_flags(two):
    c = two[0]
    client = TestClient(create_app(c), base_url="https://testserver", follow_redirects=False)
    cookie = sign_in(client, "kim", PASSWORD).headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=lax" in cookie.lower()
    csrf_cookie = client.get("/owner/login").headers.get("set-cookie") or ""
    client2 = TestClient(create_app(c), base_url="https://testserver")
    csrf_cookie = client2.get("/owner/login").headers["set-cookie"]
    assert "HttpOnly" in csrf_cookie and "Secure" in csrf_cookie and "samesite=lax" in csrf_cookie.lower()


# -- Stripe webhooks ----------------------------------------------------------------------------------


def test_a_genuinely_signed_stripe_event_about_a_payment_not_ours_changes_nothing(two):
    import stripe

    from models import LedgerEntry

    c, a, _ = two
    c.settings = c.settings.replace(stripe_webhook_secret="whsec_review")
    client = TestClient(create_app(c), base_url="https://testserver")
    with c.session_factory() as db:
        ledger_before = db.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
    for n, (kind, obj) in enumerate((
            ("charge.refunded", {"object": "charge", "id": "ch_x", "payment_intent": "pi_not_ours", "amount_refunded": 15000,
                                 "refunds": {"data": [{"id": "re_x", "amount": 15000, "status": "succeeded",
                                                       "payment_intent": "pi_not_ours"}]}}),
            ("charge.dispute.created", {"object": "dispute", "id": "dp_x", "payment_intent": "pi_not_ours", "amount": 100}),
            ("payment_intent.canceled", {"object": "payment_intent", "id": "pi_not_ours"}))):
        payload = json.dumps({"id": f"evt_review_{n}", "object": "event", "type": kind, "data": {"object": obj}})
        stamp = int(time.time())
        sig = stripe.WebhookSignature._compute_signature(f"{stamp}.{payload}", "whsec_review")
        r = client.post("/webhooks/stripe", content=payload, headers={"stripe-signature": f"t={stamp},v1={sig}",
                                                                      "content-type": "application/json"})
        assert r.status_code in (200, 202), r.text
    with c.session_factory() as db:
        assert db.execute(select(func.count()).select_from(LedgerEntry)).scalar_one() == ledger_before
    assert statuses(c, a["id"]) == ["confirmed"] * 3
    # and a forged signature is a 400
    r = client.post("/webhooks/stripe", content=b"{}", headers={"stripe-signature": f"t={int(time.time())},v1=00"})
    assert r.status_code == 400


def test_token_paths_are_hidden_in_the_access_log():
    from web.logs import RedactTokenPaths

    for path, secret in (("/manage/tok.sig", "tok.sig"), ("/manage/tok.sig/changes/ch_1?tz=UTC", "tok.sig"),
                         ("/api/v1/manage/tok.sig/cancel", "tok.sig"), ("/meeting/inf.sig", "inf.sig"),
                         ("/room/0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef")):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("1.2.3.4:5", "GET", path, "1.1", 200), None)
        RedactTokenPaths().filter(record)
        assert secret not in record.getMessage(), path


def test_token_pages_and_their_errors_never_cache_nor_leak_the_address(two, client):
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    info = make_meeting_token(c.settings.secret_key, a["sessions"][0]["id"])
    for r in (client.get(f"/manage/{token}"), client.get(f"/meeting/{info}"), client.get(f"/manage/{token}x"),
              client.get(f"/manage/{token}/changes/ch_unknown", params={"wait": 0}),
              client.get(f"/manage/{token}/changes/ch_unknown", params={"wait": "soon"})):
        assert r.headers["referrer-policy"] == "no-referrer", r.status_code
        assert r.headers["cache-control"] == "no-store", r.status_code
        csp = r.headers["content-security-policy"]
        assert "script-src" not in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert "<script" not in r.text


def test_a_malformed_query_is_a_plain_error_that_does_not_echo_it(two, client):
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    r = client.get(f"/manage/{token}/changes/ch_x", params={"wait": "<b>soon</b>"})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert "soon" not in r.text and token not in r.text
    key = make_key(c, "reader")
    r = client.get(f"/api/v1/pages/coach/slots", params={"from": "x", "to": "y", "tz": ["a", "b"]}, headers=bearer(key))
    assert r.status_code in (404, 422) and set(r.json()) == {"error"}


def test_confirmation_pages_waiting_for_the_worker_are_bounded(two, client, monkeypatch):
    """A valid link asked for a change that never comes must not hold every thread for 10 s each."""
    import threading

    from web import manage

    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    busy = threading.BoundedSemaphore(1)
    busy.acquire()  # every waiting slot taken by other requests
    monkeypatch.setattr(manage, "CHANGE_WAITERS", busy)
    started = time.monotonic()
    r = client.get(f"/manage/{token}/changes/ch_never")
    assert r.status_code == 200 and "still working" in r.text
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("query", [{"from": "9999-12-31", "to": "9999-12-31"}, {"from": "0001-01-01"},
                                   {"to": "9999-12-31"}, {"event_type": "9" * 30}])
def test_stream_filters_at_the_calendars_ends_are_refused_in_words(two, lee, query):
    r = lee.get("/owner/activity", params=query)
    assert r.status_code == 200
    assert "must be a date like" in r.text or "choose an event type from the list" in r.text


def test_raw_broker_messages_cannot_act_as_admin_nor_stretch_a_customer_grant(two):
    """What a frontend holding broker credentials could publish: `admin: true` without a grant,
    the web's own customer grant with `admin` added or with another booking's session, a
    refund with no grant: each refused, nothing changes."""
    from services.lifecycle.requests import request_cancel

    from .conftest import run_public

    c, a, b = two
    sid_a, sid_b = a["sessions"][0]["id"], b["sessions"][0]["id"]
    name = "sessionpack.cancel_sessions"
    assert run_public(c, name, {"session_ids": [sid_b], "admin": True})["error"]["code"] == "admin_grant_required"
    assert run_public(c, "sessionpack.refund_booking", {"booking_id": b["id"], "amount": "150.00"}
                      )["error"]["code"] == "admin_grant_required"
    # A genuine customer grant, caught on its way (the outbox row), then bent.
    from models import TaskOutbox

    request_cancel(c, [sid_a], tokens=[make_manage_token(c.settings.secret_key, sid_a)])
    with c.session_factory() as db:
        row = db.execute(select(TaskOutbox).where(TaskOutbox.task_name == name)).scalars().all()[-1]
        kwargs = dict(row.kwargs)
        db.delete(row)
        db.commit()
    assert kwargs["grant"].startswith("g1.customer.")
    assert run_public(c, name, {**kwargs, "admin": True})["error"]["code"] == "admin_grant_required"
    assert run_public(c, name, {**kwargs, "session_ids": [sid_b], "booking_id": b["id"]})["error"]["code"] == "invalid_grant"
    assert run_public(c, name, {**kwargs, "refund": False})["error"]["code"] == "invalid_grant"
    drain(c)
    assert statuses(c, a["id"]) == ["confirmed"] * 3 and statuses(c, b["id"]) == ["confirmed"] * 3


def test_a_csrf_secret_planted_by_a_sibling_subdomain_is_not_honoured(two):
    """Cookie tossing: evil.example.com sets `sp_csrf=KNOWN` for the parent domain, having asked
    our site for a token over KNOWN itself. On https the secret lives in `__Host-sp_csrf`, which
    no other host can set, so the planted pair is refused."""
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    planted = "K" * 40
    attacker = TestClient(create_app(c), base_url="https://testserver", cookies={"sp_csrf": planted})
    attacker_page = attacker.get(f"/manage/{token}?tab=cancel")
    known_token = csrf_of(attacker_page.text)
    victim = TestClient(create_app(c), base_url="https://testserver", cookies={"sp_csrf": planted})
    r = victim.post(f"/manage/{token}/cancel", data={"session_ids": [a["sessions"][0]["id"]], "csrf_token": known_token})
    assert r.status_code == 400
    assert "__Host-sp_csrf=" in attacker_page.headers["set-cookie"]
    assert statuses(c, a["id"]) == ["confirmed"] * 3


def test_a_body_over_either_limit_gets_the_same_error_code(two, client):
    c = two[0]
    key = make_key(c, "sizes")
    for size in (70_000, 400_000):  # over the API's 64 KB; over the app's 256 KB
        r = client.post("/api/v1/bookings", headers=bearer(key), content=b"{" + b" " * size + b"}")
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", size


def test_every_answer_on_a_secret_address_is_no_store_and_no_referrer(two, client):
    c, a, _ = two
    sid = a["sessions"][0]["id"]
    token = make_manage_token(c.settings.secret_key, sid)
    key = make_key(c, "nostore")
    csrf = csrf_of(client.get(f"/manage/{token}?tab=cancel").text)
    answers = [client.get(f"/api/v1/manage/{token}", headers=bearer(key)),
               client.post(f"/manage/{token}/cancel", data={"session_ids": [sid], "csrf_token": csrf}),  # 303
               client.post(f"/manage/{token}/cancel", content=b"x" * 300_000,
                           headers={"content-type": "application/x-www-form-urlencoded"})]  # 413
    assert [r.status_code for r in answers] == [200, 303, 413]
    for r in answers:
        assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer", r.status_code
    # elsewhere the default stays
    assert client.get("/owner/login").headers["referrer-policy"] == "same-origin"


def test_https_sites_send_hsts_and_every_answer_its_security_headers(two):
    # PUBLIC_BASE_URL https: Strict-Transport-Security on every answer (pages, token pages, the
    # API, errors, a 413); http (local development): none. CSP forbids framing and scripts,
    # nosniff everywhere, and a token page never leaks its address in a Referer.
    c, a, _ = two
    token = make_manage_token(c.settings.secret_key, a["sessions"][0]["id"])
    form = {"content-type": "application/x-www-form-urlencoded"}

    def answers(client):
        return {"manage": client.get(f"/manage/{token}"), "meeting": client.get(
                    f"/meeting/{make_meeting_token(c.settings.secret_key, a['sessions'][0]['id'])}"),
                "owner": client.get("/owner/login"), "api": client.get("/api/v1/bookings/bk_x"),
                "unknown": client.get("/nothing-here"),
                "too_large": client.post("/owner/login", content=b"a=" + b"x" * 400_000, headers=form)}

    c.settings = c.settings.replace(public_base_url="https://book.example.com")
    secure = answers(TestClient(create_app(c), base_url="https://testserver"))
    assert [r.status_code for r in secure.values()] == [200, 200, 200, 401, 404, 413]
    for name, r in secure.items():
        assert r.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains", name
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], name
        assert "default-src 'none'" in r.headers["content-security-policy"], name
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff", name
    for name in ("manage", "meeting"):
        assert secure[name].headers["referrer-policy"] == "no-referrer"
        assert secure[name].headers["cache-control"] == "no-store"

    c.settings = c.settings.replace(public_base_url="http://localhost:8000")
    plain = answers(TestClient(create_app(c)))
    assert all("strict-transport-security" not in r.headers for r in plain.values())
