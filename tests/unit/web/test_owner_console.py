"""The owner console's pages through TestClient: sign-in (cookie flags, refusals, rate limit),
scope (403 on another owner's booking), the stream's filters and cursor, the two-step admin
actions (money shown before confirming), and the money page with its CSV."""
from __future__ import annotations

import csv
import io
import re
import time

import pytest
from fastapi.testclient import TestClient

from services.console import accounts
from tests.console_data import add_booking, two_owners_config
from tests.support import apply_config, at, on
from web.app import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
def world(container):
    apply_config(container, two_owners_config())
    with container.session_factory() as db:
        add_booking(db, "bk_k1", page="kim-page", owner="kim", at=at(2026, 11, 29, 12), email="sam@example.org")
        add_booking(db, "bk_k2", page="kim-page", owner="kim", at=at(2026, 11, 21, 12), email="ana@example.org")
        add_booking(db, "bk_l1", page="lee-page", owner="lee", at=at(2026, 11, 22, 12), email="sam@example.org")
        db.commit()
    accounts.set_password(container, "kim", PASSWORD)
    accounts.set_password(container, "lee", PASSWORD + "!")
    return container


@pytest.fixture
def client(world):
    return TestClient(create_app(world), base_url="https://testserver")


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, login="kim", password=PASSWORD):
    page = client.get("/owner/login")
    return client.post("/owner/login", data={"login": login, "password": password, "csrf_token": csrf(page.text),
                                             "next": "/owner/activity"}, follow_redirects=False)


def one_h1(html: str) -> bool:
    return html.count("<h1") == 1


def test_pages_need_a_sign_in(client):
    for path in ("/owner/activity", "/owner/bookings/bk_k1", "/owner/money", "/owner/money/ledger.csv"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/owner/login?next=")


def test_the_owner_email_link_leads_back_to_the_booking_after_sign_in(client):
    r = client.get("/owner/bookings/bk_k1", follow_redirects=False)
    login = client.get(r.headers["location"])
    assert 'name="next" value="/owner/bookings/bk_k1"' in login.text
    signed = client.post("/owner/login", data={"login": "kim", "password": PASSWORD, "csrf_token": csrf(login.text),
                                               "next": "/owner/bookings/bk_k1"}, follow_redirects=False)
    assert signed.headers["location"] == "/owner/bookings/bk_k1"


def test_a_site_admin_sees_every_page(client, world):
    accounts.set_password(world, "kim", PASSWORD, site_admin=True)
    sign_in(client)
    assert client.get("/owner/bookings/bk_l1").status_code == 200
    assert "bk_l1" in client.get("/owner/activity").text
    assert "(site admin)" in client.get("/owner/money").text


def test_sign_in_sets_a_safe_cookie_and_sign_out_clears_it(client):
    page = client.get("/owner/login")
    assert page.status_code == 200 and one_h1(page.text) and '<label for="password">' in page.text
    assert "<script" not in page.text
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/owner/activity"
    cookie = r.headers["set-cookie"]
    assert "sp_owner=" in cookie and "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    assert PASSWORD not in cookie
    assert client.get("/owner/activity").status_code == 200
    out = client.post("/owner/logout", data={"csrf_token": csrf(client.get("/owner/activity").text)},
                      follow_redirects=False)
    assert out.status_code == 303
    client.cookies.delete("sp_owner")
    assert client.get("/owner/activity", follow_redirects=False).status_code == 303


def _cookie(response) -> str:
    return re.search(r"sp_owner=([^;]+)", response.headers["set-cookie"]).group(1)


def test_sign_out_ends_the_session_on_the_server(world):
    """A copy of the cookie taken before signing out (another tab, a stolen copy) is signed out
    too: the owner's session generation moved on; a fresh sign-in works again."""
    browser = TestClient(create_app(world), base_url="https://testserver")
    copied = _cookie(sign_in(browser))
    other = TestClient(create_app(world), base_url="https://testserver")

    def with_copy():
        return other.get("/owner/activity", headers={"Cookie": f"sp_owner={copied}"}, follow_redirects=False)

    assert with_copy().status_code == 200
    out = browser.post("/owner/logout", data={"csrf_token": csrf(browser.get("/owner/activity").text)},
                       follow_redirects=False)
    assert out.status_code == 303
    gone = with_copy()
    assert gone.status_code == 303 and gone.headers["location"].startswith("/owner/login")
    again = TestClient(create_app(world), base_url="https://testserver")
    fresh = _cookie(sign_in(again))
    assert fresh != copied and again.get("/owner/activity", follow_redirects=False).status_code == 200
    assert with_copy().status_code == 303  # the old one stays dead


def test_a_new_password_signs_out_every_browser(world):
    browser = TestClient(create_app(world), base_url="https://testserver")
    sign_in(browser)
    assert browser.get("/owner/activity", follow_redirects=False).status_code == 200
    accounts.set_password(world, "kim", PASSWORD)  # even the same password: a new session generation
    assert browser.get("/owner/activity", follow_redirects=False).status_code == 303


def test_a_cookie_of_an_old_generation_or_none_is_signed_out(world):
    """A cookie signed with SECRET_KEY but naming an older generation (or none, as cookies made
    before this change did) does not sign in."""
    from itsdangerous import URLSafeTimedSerializer

    from models import Owner

    with world.session_factory() as db:
        owner = db.get(Owner, "kim")
        stamp, generation = accounts.password_stamp(owner.password_hash), owner.session_generation
    serializer = URLSafeTimedSerializer(world.settings.secret_key, salt="sessionpack/web/owner-session/v1")
    browser = TestClient(create_app(world), base_url="https://testserver")
    for payload, ok in (({"o": "kim", "s": stamp, "g": generation}, True),
                        ({"o": "kim", "s": stamp, "g": generation - 1}, False),
                        ({"o": "kim", "s": stamp}, False), ({"o": "kim", "s": stamp, "g": str(generation)}, False)):
        status = browser.get("/owner/activity", headers={"Cookie": f"sp_owner={serializer.dumps(payload)}"},
                             follow_redirects=False).status_code
        assert status == (200 if ok else 303), payload


def test_cookie_is_not_secure_on_plain_http(world):
    http = TestClient(create_app(world.__class__(settings=world.settings.__class__(
        **{**world.settings.__dict__, "public_base_url": "http://localhost:8000"}), clock=world.clock)))
    assert "Secure" not in sign_in(http).headers["set-cookie"]


def test_wrong_password_is_refused_then_rate_limited(client):
    for _ in range(accounts.LoginLimiter().per_pair.amount):
        r = sign_in(client, password="wrong password")
        assert r.status_code == 401 and "wrong" in r.text and "sp_owner" not in r.headers.get("set-cookie", "")
    r = sign_in(client)  # even the right password waits now
    assert r.status_code == 429 and "too many" in r.text.lower() and int(r.headers["retry-after"]) > 0


def test_an_attacker_failing_on_purpose_does_not_lock_the_owner_out(world):
    app = create_app(world)
    attacker = TestClient(app, base_url="https://testserver", client=("198.51.100.66", 4000))
    for _ in range(5):  # accounts.PER_PAIR_LIMIT
        assert sign_in(attacker, password="wrong password").status_code == 401
    assert sign_in(attacker).status_code == 429  # that address at that owner waits
    owner = TestClient(app, base_url="https://testserver", client=("192.0.2.10", 5000))
    r = sign_in(owner)
    assert r.status_code == 303 and r.headers["location"] == "/owner/activity"


def test_past_the_owner_ceiling_sign_in_is_slowed_not_refused(world):
    app = create_app(world)
    app.state.owner_login_limiter = accounts.LoginLimiter(owner_ceiling="2/15minutes", slowdown=0.4)
    for n in range(2):  # two addresses, one failure each: the owner's ceiling
        stranger = TestClient(app, base_url="https://testserver", client=(f"198.51.100.{n}", 4000))
        assert sign_in(stranger, password="wrong password").status_code == 401
    owner = TestClient(app, base_url="https://testserver", client=("192.0.2.10", 5000))
    started = time.monotonic()
    r = sign_in(owner)
    assert r.status_code == 303 and r.headers["location"] == "/owner/activity"
    assert time.monotonic() - started >= 0.4


def test_login_without_csrf_is_refused(client):
    client.get("/owner/login")
    r = client.post("/owner/login", data={"login": "kim", "password": PASSWORD})
    assert r.status_code == 400


def test_a_forged_or_foreign_next_is_ignored(client):
    page = client.get("/owner/login")
    r = client.post("/owner/login", data={"login": "kim", "password": PASSWORD, "csrf_token": csrf(page.text),
                                          "next": "https://evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/owner/activity"


def test_activity_is_scoped_filtered_and_paged(client):
    sign_in(client)
    page = client.get("/owner/activity")
    assert page.status_code == 200 and one_h1(page.text)
    assert "bk_k1" in page.text and "bk_k2" in page.text and "bk_l1" not in page.text
    assert '<label for="f-customer">' in page.text
    only_sam = client.get("/owner/activity", params={"customer": "SAM@example.org"})
    assert "bk_k1" in only_sam.text and "bk_k2" not in only_sam.text
    first = client.get("/owner/activity", params={"customer": "sam@example.org", "action": "session.confirmed"})
    assert first.text.count('href="/owner/bookings/bk_k1"') == 3
    bad = client.get("/owner/activity", params={"from": "yesterday"})
    assert bad.status_code == 200 and "date like" in bad.text


def test_activity_pages_by_cursor(client, world):
    from web import owner

    sign_in(client)
    owner_page_size = owner.PAGE_SIZE
    owner.PAGE_SIZE = 3
    try:
        seen = []
        url = "/owner/activity"
        while url:
            html = client.get(url).text
            seen += re.findall(r'<td data-label="When">([^<]+)</td>', html)
            found = re.search(r'href="(/owner/activity\?[^"]*cursor=[^"]+)">Older', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert len(seen) == 8  # two bookings of 4 entries
    finally:
        owner.PAGE_SIZE = owner_page_size


def test_booking_page_and_scope(client):
    sign_in(client)
    page = client.get("/owner/bookings/bk_k1")
    assert page.status_code == 200 and one_h1(page.text)
    assert "Session 3" in page.text and "/manage/" not in page.text  # never the customer's link
    assert "America/New_York" in page.text or "EST" in page.text or "Dec" in page.text
    assert client.get("/owner/bookings/bk_l1").status_code == 403
    assert client.get("/owner/bookings/bk_l1/reschedule?session=bk_l1-s1").status_code == 403
    assert client.get("/owner/bookings/bk_nope").status_code == 404
    token = csrf(page.text)
    r = client.post("/owner/bookings/bk_l1/refund", data={"csrf_token": token, "amount": "1.00"})
    assert r.status_code == 403


def _outbox(container):
    from models import TaskOutbox

    with container.session_factory() as db:
        return [(r.task_name, dict(r.kwargs)) for r in db.query(TaskOutbox).order_by(TaskOutbox.id)]


def test_cancel_shows_the_refund_first_then_queues_with_an_admin_grant(client, world):
    from services.grants import verify_grant

    sign_in(client)
    token = csrf(client.get("/owner/bookings/bk_k1").text)
    confirm = client.post("/owner/bookings/bk_k1/cancel", data={"csrf_token": token, "session_ids": ["bk_k1-s2"],
                                                                 "refund": "none", "reason": "owner ill"})
    assert confirm.status_code == 200 and one_h1(confirm.text) and "$0.00" in confirm.text and not _outbox(world)
    with_refund = client.post("/owner/bookings/bk_k1/cancel", data={"csrf_token": token, "session_ids": ["bk_k1-s2"],
                                                                     "refund": "policy"})
    assert "$100.00" in with_refund.text  # no policy in the terms: 100 % of 300.00 / 3
    change_id = re.search(r'name="change_id" value="([^"]+)"', confirm.text).group(1)
    form = {"csrf_token": csrf(confirm.text), "action": "cancel", "session_ids": ["bk_k1-s2"], "with_refund": "no",
            "reason": "owner ill", "change_id": change_id}
    done = client.post("/owner/bookings/bk_k1/submit", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/owner/bookings/bk_k1/changes/{change_id}"
    again = client.post("/owner/bookings/bk_k1/submit", data=form, follow_redirects=False)
    assert again.headers["location"] == done.headers["location"]  # a double post is the same change
    (name, kwargs), (_, kwargs2) = _outbox(world)
    assert name == "sessionpack.cancel_sessions" and kwargs["admin"] is True and kwargs["refund"] is False
    assert kwargs["change_id"] == kwargs2["change_id"] == change_id and "tokens" not in kwargs
    assert verify_grant(world.settings.secret_key, name, kwargs, now=world.clock(), role="admin")
    outcome = client.get(done.headers["location"])
    assert outcome.status_code == 200 and "Working on it" in outcome.text and 'http-equiv="refresh"' in outcome.text


def test_refund_confirm_and_refusal(client, world):
    sign_in(client)
    token = csrf(client.get("/owner/bookings/bk_k1").text)
    confirm = client.post("/owner/bookings/bk_k1/refund", data={"csrf_token": token, "amount": "12.34",
                                                                 "reason": "late start"})
    assert confirm.status_code == 200 and "$12.34" in confirm.text and "Yes, refund" in confirm.text
    too_much = client.post("/owner/bookings/bk_k1/refund", data={"csrf_token": token, "amount": "999.00"})
    assert "Nothing was changed" in too_much.text and "more than" in too_much.text
    no_csrf = client.post("/owner/bookings/bk_k1/refund", data={"amount": "1.00"})
    assert no_csrf.status_code == 400
    change_id = re.search(r'name="change_id" value="([^"]+)"', confirm.text).group(1)
    done = client.post("/owner/bookings/bk_k1/submit", data={
        "csrf_token": token, "action": "refund", "amount": "12.34", "reason": "late start", "change_id": change_id},
        follow_redirects=False)
    assert done.headers["location"] == f"/owner/bookings/bk_k1/changes/rf-{change_id}"
    [(name, kwargs)] = _outbox(world)
    assert name == "sessionpack.refund_booking" and kwargs["amount"] == "12.34" and kwargs["refund_id"] == change_id


def test_reschedule_lists_free_times_and_takes_any_time(client, world):
    sign_in(client)
    page = client.get("/owner/bookings/bk_k1/reschedule", params={"session": "bk_k1-s1"})
    assert page.status_code == 200 and one_h1(page.text) and 'name="to"' in page.text
    token = csrf(page.text)
    confirm = client.post("/owner/bookings/bk_k1/reschedule", data={
        "csrf_token": token, "session_id": "bk_k1-s1", "to": "other", "other_date": on("2026-12-15"),
        "other_time": "09:00"})
    assert confirm.status_code == 200 and "Fee" in confirm.text and "$0.00" in confirm.text, confirm.text
    assert on("2026-12-15T14:00:00Z") in confirm.text  # 09:00 in New York
    wrong = client.post("/owner/bookings/bk_k1/reschedule", data={
        "csrf_token": token, "session_id": "bk_k2-s1", "to": on("2026-12-15T15:00:00Z")})
    assert "Nothing was changed" in wrong.text


def test_another_owners_sessions_cannot_ride_on_my_booking(client, world):
    """The scope is checked on the booking in the URL; its sessions must be that booking's."""
    sign_in(client)
    token = csrf(client.get("/owner/bookings/bk_k1").text)
    for path, data in (("cancel", {"session_ids": ["bk_l1-s1"]}),
                       ("reschedule", {"session_id": "bk_l1-s1", "to": on("2026-12-15T15:00:00Z")}),
                       ("submit", {"action": "cancel", "session_ids": ["bk_l1-s1"], "with_refund": "no"}),
                       ("submit", {"action": "reschedule", "session_id": "bk_l1-s1", "to": on("2026-12-15T15:00:00Z")})):
        r = client.post(f"/owner/bookings/bk_k1/{path}", data={"csrf_token": token, **data}, follow_redirects=False)
        assert r.status_code == 200 and "not this booking" in r.text, (path, r.text[:300])
    assert _outbox(world) == []


def test_decline_a_request(client, world):
    from services.grants import verify_grant

    with world.session_factory() as db:
        add_booking(db, "bk_k9", page="kim-page", owner="kim", event_type="intro", sessions=1, price_cents=0,
                    at=at(2026, 11, 29, 13), status="awaiting_approval", email="ana@example.org")
        db.commit()
    sign_in(client)
    page = client.get("/owner/bookings/bk_k9")
    assert "awaits your approval" in page.text and "Approve" in page.text
    confirm = client.post("/owner/bookings/bk_k9/decide", data={"csrf_token": csrf(page.text), "decision": "decline",
                                                                 "reason": "fully booked"})
    assert confirm.status_code == 200 and "Yes, decline" in confirm.text and "fully booked" in confirm.text
    change_id = re.search(r'name="change_id" value="([^"]+)"', confirm.text).group(1)
    assert change_id.startswith("dc_")
    done = client.post("/owner/bookings/bk_k9/submit", data={"csrf_token": csrf(confirm.text), "action": "decline",
                                                              "reason": "fully booked", "change_id": change_id},
                       follow_redirects=False)
    assert done.headers["location"] == f"/owner/bookings/bk_k9/changes/{change_id}"
    [(name, kwargs)] = _outbox(world)
    assert name == "sessionpack.decline_booking" and kwargs["reason"] == "fully booked"
    assert verify_grant(world.settings.secret_key, name, kwargs, now=world.clock(), role="admin")
    # A confirmed booking has nothing to decide.
    other = client.post("/owner/bookings/bk_k1/decide", data={"csrf_token": csrf(page.text), "decision": "approve"})
    assert "no request to approve" in other.text


def test_money_page_and_csv(client):
    sign_in(client)
    page = client.get("/owner/money")
    assert page.status_code == 200 and one_h1(page.text) and "$600.00" in page.text
    r = client.get("/owner/money/ledger.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["booking_id"] for row in rows} == {"bk_k1", "bk_k2"}
