"""The HTTP API `/api/v1` in-process (FastAPI's TestClient on the real app, SQLite and PostgreSQL),
its queued work run by the tasks' own bodies: keys and their scopes, slots, bookings (validated
on the spot, idempotent by request_id, 409 on a reused one), the customer's manage view and
changes by token, admin actions, error objects, body size, rate limits, and the OpenAPI document."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from services import apikeys
from services.tokens import make_manage_token
from tests.support import (
    apply_config, booking_request, daily_slots, drain, on_localstripe, package_config, run_public_tasks_here,
)
from web.app import create_app

STRIPE_KEY = "sk_test_sessionpack_api"


@pytest.fixture
def c(container, stripe_url):
    return run_public_tasks_here(on_localstripe(container, stripe_url, STRIPE_KEY))


def make_key(c, name="front", pages=(), admin=False) -> str:
    with c.uow() as uow:
        key = apikeys.create_key(uow, name, pages, admin, now=c.clock())["key"]
        uow.commit()
    return key


@pytest.fixture
def client(c):
    return TestClient(create_app(c))


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def configure(c, *, price=None, n=1, manual=False):
    cfg = package_config(n, price=price)
    if manual:
        cfg["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = "manual"
    cfg["owners"].append({"id": "lee", "name": "Lee", "email": "lee@example.com", "timezone": "UTC"})
    other = dict(cfg["booking_pages"][0], slug="other", owner="lee", name="Other page")
    cfg["booking_pages"].append(other)
    apply_config(c, cfg)


def slot(clock, days=3, hhmm="10:00", n=1):
    return daily_slots(clock() + timedelta(days=days), n, hhmm)


def test_keys_are_required_and_checked(c, client, clock):
    configure(c)
    key = make_key(c)
    url = f"/api/v1/pages/coach/pkg/slots?from={slot(clock)[0][:10]}&to={slot(clock)[0][:10]}"
    r = client.get(url)
    assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_required"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get(url, headers=auth("sk_sp_nope")).json()["error"]["code"] == "api_key_invalid"
    r = client.get(url, headers=auth(key))
    assert r.status_code == 200 and slot(clock)[0] in r.json()["slots"]
    with c.uow() as uow:
        apikeys.revoke_key(uow, "front", now=clock())
        uow.commit()
    from web import api

    api._keys.clear()  # what KEY_CACHE_SECONDS does in production
    assert client.get(url, headers=auth(key)).status_code == 401
    with c.session_factory() as db:
        listed = apikeys.list_keys(db)
    assert listed[0]["name"] == "front" and listed[0]["revoked"] and "key" not in listed[0]
    assert key not in str(listed)


def test_slots_errors(c, client, clock):
    configure(c)
    key = make_key(c)
    r = client.get("/api/v1/pages/nope/slots?from=2026-12-01&to=2026-12-02", headers=auth(key))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_booking_page"
    r = client.get("/api/v1/pages/coach/pkg/slots?from=tomorrow&to=2026-12-02", headers=auth(key))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_date"
    r = client.get("/api/v1/pages/coach/pkg/slots", headers=auth(key))
    assert r.status_code == 422


def test_book_read_and_idempotency(c, client, db_backend, clock):
    configure(c)
    key = make_key(c)
    req = booking_request(slot(clock), request_id="web-api-1")
    r = client.post("/api/v1/bookings", json=req, headers=auth(key))
    assert r.status_code == 202, r.text
    booking_id = r.json()["booking_id"]
    assert r.json()["status"] == "pending" and r.headers["location"] == f"/api/v1/bookings/{booking_id}"
    got = client.get(r.headers["location"], headers=auth(key))
    assert got.status_code == 200 and got.json()["status"] == "pending"

    again = client.post("/api/v1/bookings", json=req, headers=auth(key))
    assert again.status_code == 202 and again.json()["booking_id"] == booking_id
    other = dict(req, customer=dict(req["customer"], name="Someone Else"))
    r = client.post("/api/v1/bookings", json=other, headers=auth(key))
    assert r.status_code == 409 and r.json()["error"]["code"] == "request_id_reused"

    drain(c)
    shown = client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()
    assert shown["status"] == "confirmed" and shown["request_id"] == "web-api-1"
    assert client.get("/api/v1/bookings/bk_unknown", headers=auth(key)).status_code == 404


@pytest.mark.parametrize("change, code", [
    ({"slots": ["2020-01-01T10:00:00Z"]}, None),
    ({"booking_page": "nope"}, "unknown_booking_page"),
    ({"customer": {"name": "x"}}, None),
    ({"surprise": 1}, None),
])
def test_invalid_booking_requests_are_refused_on_the_spot(c, client, clock, change, code):
    configure(c)
    key = make_key(c)
    req = dict(booking_request(slot(clock)), **change)
    r = client.post("/api/v1/bookings", json=req, headers=auth(key))
    assert r.status_code in (409, 422, 404), r.text
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message"}
    if code:
        assert r.json()["error"]["code"] == code
    assert drain(c) == []  # nothing was queued


def test_a_slot_taken_is_a_conflict(c, client, clock):
    configure(c)
    key = make_key(c)
    assert client.post("/api/v1/bookings", json=booking_request(slot(clock)), headers=auth(key)).status_code == 202
    drain(c)
    r = client.post("/api/v1/bookings", json=booking_request(slot(clock)), headers=auth(key))
    assert r.status_code == 409 and r.json()["error"]["code"]


def test_page_scoped_keys(c, client, clock):
    configure(c)
    scoped = make_key(c, "coach-only", pages=["coach"])
    req = dict(booking_request(slot(clock)), booking_page="other")
    r = client.post("/api/v1/bookings", json=req, headers=auth(scoped))
    assert r.status_code == 403 and r.json()["error"]["code"] == "page_not_covered"
    r = client.get("/api/v1/pages/other/pkg/slots?from=2026-12-01&to=2026-12-01", headers=auth(scoped))
    assert r.status_code == 403


def test_a_page_scoped_key_neither_sees_nor_blocks_another_pages_request_ids(c, client, db_backend, clock):
    # A key scoped to one page has its own request_id namespace: it cannot learn that another page
    # used a request_id (no 409, no 403 on the derived booking id), nor squat one another page's
    # frontend (over the API, or on the broker / CLI path, which keeps the global namespace) uses.
    from services.booking import submit_booking
    from services.booking.ids import booking_id_for

    configure(c)
    coach = make_key(c, "coach-only", pages=["coach"])
    other = make_key(c, "other-only", pages=["other"])
    taken = dict(booking_request(slot(clock, days=3)), request_id="web-shared-1", booking_page="other")
    global_id = submit_booking(c, taken)  # page other, straight from the broker
    drain(c)
    assert global_id == booking_id_for("web-shared-1")

    unknown = client.get(f"/api/v1/bookings/{booking_id_for('web-never-used')}", headers=auth(coach))
    probed = client.get(f"/api/v1/bookings/{global_id}", headers=auth(coach))
    assert unknown.status_code == probed.status_code == 404
    assert probed.json()["error"]["code"] == unknown.json()["error"]["code"] == "unknown_booking"

    mine = dict(booking_request(slot(clock, days=4)), request_id="web-shared-1")
    r = client.post("/api/v1/bookings", json=mine, headers=auth(coach))
    assert r.status_code == 202, r.json()
    coach_id = r.json()["booking_id"]
    assert coach_id != global_id
    again = client.post("/api/v1/bookings", json=mine, headers=auth(coach))  # idempotent in its namespace
    assert again.status_code == 202 and again.json()["booking_id"] == coach_id
    changed = dict(mine, customer={"name": "Kim", "email": "kim@example.org", "timezone": "UTC"})
    assert client.post("/api/v1/bookings", json=changed, headers=auth(coach)).json()["error"]["code"] \
        == "request_id_reused"

    # the coach key used web-squat-1 first: the other page's frontends can still use it
    squat = dict(booking_request(slot(clock, days=5)), request_id="web-squat-1")
    assert client.post("/api/v1/bookings", json=squat, headers=auth(coach)).status_code == 202
    theirs = dict(booking_request(slot(clock, days=5, hhmm="12:00")), request_id="web-squat-1", booking_page="other")
    r = client.post("/api/v1/bookings", json=theirs, headers=auth(other))
    assert r.status_code == 202, r.json()
    assert submit_booking(c, dict(theirs, slots=slot(clock, days=6))) == booking_id_for("web-squat-1")
    drain(c)

    shown = client.get(f"/api/v1/bookings/{coach_id}", headers=auth(coach)).json()
    assert shown["request_id"] == "web-shared-1" and shown["status"] == "confirmed"
    assert shown["booking_page"] == "coach"
    assert client.get(f"/api/v1/bookings/{r.json()['booking_id']}", headers=auth(other)).json()["status"] == "confirmed"
    assert client.get(f"/api/v1/bookings/{global_id}", headers=auth(other)).json()["request_id"] == "web-shared-1"


def test_manage_view_and_customer_changes(c, client, db_backend, clock):
    configure(c, n=2)
    key = make_key(c)
    r = client.post("/api/v1/bookings", json=booking_request(slot(clock, n=2)), headers=auth(key))
    booking_id = r.json()["booking_id"]
    drain(c)
    shown = client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()
    first, second = shown["sessions"]
    token = first["manage_url"].rsplit("/", 1)[1]

    view = client.get(f"/api/v1/manage/{token}", headers=auth(key))
    assert view.status_code == 200
    s = view.json()["sessions"][0]
    assert s["can_cancel"] is True and s["refund_if_cancelled"] == "0.00" and s["can_reschedule"] is True
    assert "activity" not in view.json()
    assert client.get("/api/v1/manage/ss_x.forged", headers=auth(key)).status_code == 404

    r = client.post(f"/api/v1/manage/{token}/reschedule", json={"session_id": first["id"], "to": slot(clock, 5)[0]},
                    headers=auth(key))
    assert r.status_code == 202 and r.json()["change_id"]
    r = client.post(f"/api/v1/manage/{token}/cancel", json={"session_ids": [second["id"]], "reason": "ill"},
                    headers=auth(key))
    assert r.status_code == 202 and r.json()["booking_id"] == booking_id
    drain(c)
    shown = client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()
    assert shown["sessions"][0]["start"] == slot(clock, 5)[0]
    assert shown["sessions"][1]["status"] == "cancelled"

    r = client.post(f"/api/v1/manage/{token}/cancel", json={"session_ids": ["ss_elsewhere"]}, headers=auth(key))
    assert r.status_code == 404
    r = client.post(f"/api/v1/manage/{token}/cancel", json={"session_ids": []}, headers=auth(key))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.post(f"/api/v1/manage/{token}/reschedule", json={"session_id": first["id"], "to": "2020-01-01T10:00Z"},
                    headers=auth(key))
    assert r.status_code in (409, 422) and r.json()["error"]["code"]


def test_admin_actions_need_an_admin_key(c, client, clock):
    configure(c, price="100.00")
    key, admin = make_key(c), make_key(c, "ops", admin=True)
    req = dict(booking_request(slot(clock)), payment_method="pm_card_visa")
    booking_id = client.post("/api/v1/bookings", json=req, headers=auth(key)).json()["booking_id"]
    drain(c)
    sid = client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()["sessions"][0]["id"]

    for path, body in ((f"/api/v1/bookings/{booking_id}/refunds", {"amount": "10.00"}),
                       (f"/api/v1/sessions/{sid}/cancel", {}),
                       (f"/api/v1/sessions/{sid}/reschedule", {"to": slot(clock, 6)[0]}),
                       (f"/api/v1/bookings/{booking_id}/approve", {})):
        r = client.post(path, json=body, headers=auth(key))
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"

    body = {"amount": "10.00", "reason": "goodwill", "refund_id": "rf-api-1"}
    first = client.post(f"/api/v1/bookings/{booking_id}/refunds", json=body, headers=auth(admin))
    assert first.status_code == 202
    again = client.post(f"/api/v1/bookings/{booking_id}/refunds", json=body, headers=auth(admin))
    assert again.json()["change_id"] == first.json()["change_id"]
    drain(c)
    assert client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()["refunded"] == "10.00"
    r = client.post(f"/api/v1/bookings/{booking_id}/refunds", json={"amount": "5000.00"}, headers=auth(admin))
    assert r.status_code == 409 and r.json()["error"]["code"] == "refund_exceeds_refundable"
    r = client.post(f"/api/v1/bookings/{booking_id}/approve", headers=auth(admin))
    assert r.status_code in (409, 422) and r.json()["error"]["code"] == "not_awaiting_approval"

    assert client.post(f"/api/v1/sessions/{sid}/reschedule", json={"to": slot(clock, 6)[0]},
                       headers=auth(admin)).status_code == 202
    drain(c)
    assert client.post(f"/api/v1/sessions/{sid}/cancel", json={"refund": False}, headers=auth(admin)).status_code == 202
    drain(c)
    shown = client.get(f"/api/v1/bookings/{booking_id}", headers=auth(key)).json()
    assert shown["status"] == "cancelled" and shown["sessions"][0]["start"] == slot(clock, 6)[0]


def test_approve_and_decline(c, client, clock):
    configure(c, manual=True)
    key, admin = make_key(c), make_key(c, "ops", admin=True)
    a = client.post("/api/v1/bookings", json=booking_request(slot(clock)), headers=auth(key)).json()["booking_id"]
    b = client.post("/api/v1/bookings", json=booking_request(slot(clock, 4)), headers=auth(key)).json()["booking_id"]
    drain(c)
    assert client.get(f"/api/v1/bookings/{a}", headers=auth(key)).json()["status"] == "awaiting_approval"
    assert client.post(f"/api/v1/bookings/{a}/approve", headers=auth(admin)).status_code == 202
    assert client.post(f"/api/v1/bookings/{b}/decline", json={"reason": "full"}, headers=auth(admin)).status_code == 202
    drain(c)
    assert client.get(f"/api/v1/bookings/{a}", headers=auth(key)).json()["status"] == "confirmed"
    assert client.get(f"/api/v1/bookings/{b}", headers=auth(key)).json()["status"] == "cancelled"


def test_big_bodies_and_bad_json(c, client):
    key = make_key(c)
    r = client.post("/api/v1/bookings", content=b"{" + b" " * 70_000 + b"}", headers=auth(key))
    assert r.status_code == 413
    r = client.post("/api/v1/bookings", content=b"not json", headers=auth(key))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"


def test_rate_limit_per_key(c, clock):
    c.settings = c.settings.replace(api_rate_limit="3/minute")
    client = TestClient(create_app(c))
    configure(c)
    one, two = make_key(c, "one"), make_key(c, "two")
    url = "/api/v1/bookings/bk_x"
    assert [client.get(url, headers=auth(one)).status_code for _ in range(3)] == [404] * 3
    r = client.get(url, headers=auth(one))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    assert client.get(url, headers=auth(two)).status_code == 404  # per key


def test_openapi_document_is_valid_and_generated_from_the_models(client):
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/bookings", "/api/v1/bookings/{booking_id}", "/api/v1/manage/{token}",
            "/api/v1/pages/{page}/{event_type}/slots", "/api/v1/bookings/{booking_id}/refunds"} <= set(doc["paths"])
    body = doc["paths"]["/api/v1/bookings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"request_id", "booking_page", "customer", "slots"} <= set(body["properties"])
    assert "ErrorResponse" in doc["components"]["schemas"]
    assert "can_cancel" in doc["components"]["schemas"]["ManageSessionOut"]["properties"]
