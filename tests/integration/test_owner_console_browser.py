"""The owner console in a real browser (Debian's chromium + chromium-driver through Selenium)
against the real web process (uvicorn), a real worker, PostgreSQL, Redis and localstripe.

One owner signs in, finds a booking by the customer's email, cancels one session without a
refund, refunds 12.34, moves a session inside the customer's notice window, approves a manual
request; a wrong password is refused and then rate-limited; another owner's booking is a 403;
the ledger CSV adds up to what Stripe holds and `reconcile` agrees. Screenshots of every page at
1280 and 375 px go to tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import write_json
from tests.worker_process import cli

pytestmark = pytest.mark.integration

KIM_PASSWORD, LEE_PASSWORD = "kim's long password", "lee's long password"
ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def console_config() -> dict:
    policies = {"cancel": {"allowed": True, "min_notice_hours": 24, "refund_percent": 50},
                "reschedule": {"allowed": True, "min_notice_hours": 24, "fee_percent": 10}}
    return {
        "owners": [{"id": "kim", "name": "Kim Coach", "email": "kim@example.com", "timezone": "America/New_York"},
                   {"id": "lee", "name": "Lee Tutor", "email": "lee@example.com", "timezone": "Europe/Berlin"}],
        "booking_pages": [
            {"slug": "coach", "owner": "kim", "name": "Coaching with Kim", "timezone": "America/New_York",
             "availability": {"weekly": ALL_DAY},
             "event_types": [
                 {"slug": "pkg", "name": "Coaching, 3 sessions", "duration_minutes": 60,
                  "scheduling": {"sessions_per_booking": 3, "min_notice_minutes": 60, "slot_interval_minutes": 30},
                  "conferencing": {"provider": "builtin"}, "policies": policies,
                  "payment": {"price": "300.00", "currency": "USD"}},
                 {"slug": "ask", "name": "Intro call (on request)", "duration_minutes": 30,
                  "scheduling": {"booking_mode": "manual", "min_notice_minutes": 60, "slot_interval_minutes": 30},
                  "conferencing": {"provider": "none"}}]},
            {"slug": "tutor", "owner": "lee", "name": "Tutoring with Lee", "timezone": "Europe/Berlin",
             "availability": {"weekly": ALL_DAY},
             "event_types": [{"slug": "one", "name": "Lesson", "duration_minutes": 60,
                              "scheduling": {"min_notice_minutes": 60, "slot_interval_minutes": 30},
                              "conferencing": {"provider": "none"}}]},
        ],
    }


def _slot(at: datetime) -> str:
    at = at.astimezone(timezone.utc).replace(second=0, microsecond=0)
    at += timedelta(minutes=(30 - at.minute % 30) % 30)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _request(request_id, page, event_type, slots, email, payment_method=None) -> dict:
    req = {"request_id": request_id, "booking_page": page, "event_type": event_type,
           "customer": {"name": "Sam Lee" if "sam" in email else "Ana Diaz", "email": email,
                        "timezone": "Europe/Berlin"}, "slots": slots}
    if payment_method:
        req["payment_method"] = payment_method
    return req


@pytest.fixture
def web_process(pg_redis_env, tmp_path):
    """The `web` process as the Procfile runs it, on a free port (tests/web_process.py)."""
    from tests.web_process import WebProcess, free_port

    port = free_port()
    env = {**pg_redis_env, "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    web = WebProcess(env, tmp_path / "web.log").start()
    yield web.url, env
    web.stop()


@pytest.fixture
def browser():
    from tests.web_process import CHROMEDRIVER, CHROMIUM, chromium_driver

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver")
    driver = chromium_driver()
    yield driver
    driver.quit()


def shoot(driver, name: str) -> None:
    """The page checked as the customer pages are (one h1, a label for every field, no script) and
    photographed at 1280 and 375 px (nothing sticking out sideways on the phone)."""
    from tests.integration.test_web_browser import check_accessible, screenshots

    check_accessible(driver)
    screenshots(driver, f"owner-{name}")


def text_of(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def wait_for(driver, predicate, seconds: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"waited {seconds}s for {what}; the page says:\n{text_of(driver)}")


def finish_change(driver, name: str) -> None:
    """On a change's outcome page: it refreshes itself until the worker has decided."""
    from selenium.webdriver.common.by import By

    wait_for(driver, lambda: driver.find_element(By.TAG_NAME, "h1").text in ("Done", "Refused"), 90, "the change")
    shoot(driver, name)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Done", text_of(driver)


def sign_in(driver, base: str, login: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/owner/login")
    driver.find_element(By.ID, "login").clear()
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(password)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))


def click_and_wait(driver, element) -> None:
    """Click what submits a form or follows a link, and wait for the next page."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def gone(_driver) -> bool:
        try:
            page.is_enabled()
            return False
        except WebDriverException:  # stale, or Chrome's "node does not belong to the document"
            return True

    WebDriverWait(driver, 30).until(gone)


def test_owner_console_in_a_browser(pg_redis_env, worker_factory, web_process, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, env = web_process
    worker_factory(pg_redis_env)
    assert cli(env, "migrate")[0] == 0
    code, _, err = cli(env, "config", "apply", write_json(tmp_path, "config.json", console_config()))
    assert code == 0, err
    now = datetime.now(timezone.utc)
    # Session 1 starts in about three hours: inside the customer's 24-hour notice window.
    slots = [_slot(now + timedelta(hours=3)), _slot(now + timedelta(days=2)), _slot(now + timedelta(days=3))]
    paid = _request("console-paid", "coach", "pkg", slots, "sam@example.org", "pm_card_visa")
    code, booking, err = cli(env, "book", write_json(tmp_path, "paid.json", paid), "--wait", "90")
    assert code == 0 and booking["status"] == "confirmed", (booking, err)
    ask = _request("console-ask", "coach", "ask", [_slot(now + timedelta(days=4))], "ana@example.org")
    code, request_shown, err = cli(env, "book", write_json(tmp_path, "ask.json", ask), "--wait", "90")
    assert code == 0 and request_shown["status"] == "awaiting_approval", (request_shown, err)
    other = _request("console-lee", "tutor", "one", [_slot(now + timedelta(days=5))], "sam@example.org")
    code, lees, err = cli(env, "book", write_json(tmp_path, "lee.json", other), "--wait", "90")
    assert code == 0 and lees["status"] == "confirmed", (lees, err)
    _set_passwords(env)

    # A wrong password is refused, then the door closes for that owner (even to the right one).
    for attempt in range(5):
        sign_in(browser, base, "lee", "not the password")
        assert "The owner or the password is wrong." in text_of(browser)
        if attempt == 0:
            shoot(browser, "login-refused")
    sign_in(browser, base, "lee", LEE_PASSWORD)
    assert "too many failed sign-ins" in text_of(browser).lower()
    assert "/owner/login" in browser.current_url
    shoot(browser, "login-rate-limited")

    # Kim signs in and finds Sam's booking by email.
    browser.get(f"{base}/owner/login")
    shoot(browser, "login")
    sign_in(browser, base, "kim@example.com", KIM_PASSWORD)
    wait_for(browser, lambda: browser.current_url.endswith("/owner/activity"), 10, "the activity page")
    shoot(browser, "activity")
    browser.find_element(By.ID, "f-customer").send_keys("SAM@example.org")
    Select(browser.find_element(By.ID, "f-action")).select_by_value("session.confirmed")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.stream tbody tr")
    assert len(rows) == 3, text_of(browser)  # each session on its own; Lee's booking of Sam not shown
    shoot(browser, "activity-filtered")
    click_and_wait(browser, rows[0].find_element(By.CSS_SELECTOR, f'a[href="/owner/bookings/{booking["id"]}"]'))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Sam Lee")
    shoot(browser, "booking")
    sessions = {s["number"]: s["id"] for s in booking["sessions"]}

    # Cancel session 2 without a refund: the confirmation shows the money first.
    browser.find_element(By.ID, f"pick-{sessions[2]}").click()
    browser.find_element(By.ID, "refund-none").click()
    browser.find_element(By.ID, "cancel-reason").send_keys("Kim is away that day")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Cancel selected sessions')]"))
    assert "Refund\n$0.00" in text_of(browser) or "$0.00" in text_of(browser)
    shoot(browser, "confirm-cancel")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Yes, cancel')]"))
    finish_change(browser, "cancel-done")

    # Refund 12.34 by hand.
    browser.get(f"{base}/owner/bookings/{booking['id']}")
    browser.find_element(By.ID, "refund-amount").send_keys("12.34")
    browser.find_element(By.ID, "refund-reason").send_keys("Late start")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Refund…')]"))
    assert "$12.34" in text_of(browser)
    shoot(browser, "confirm-refund")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Yes, refund')]"))
    finish_change(browser, "refund-done")

    # Move session 1 (three hours away: the customer could not) to the first free time listed.
    browser.get(f"{base}/owner/bookings/{booking['id']}/reschedule?session={sessions[1]}")
    shoot(browser, "reschedule")
    first_time = browser.find_element(By.CSS_SELECTOR, "ul.times input[name=to]")
    new_start = first_time.get_attribute("value")
    first_time.click()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Continue')]"))
    assert "Fee\n$0.00" in text_of(browser) or "$0.00" in text_of(browser)
    shoot(browser, "confirm-reschedule")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Yes, move it')]"))
    finish_change(browser, "reschedule-done")

    # Approve the manual request.
    browser.get(f"{base}/owner/bookings/{request_shown['id']}")
    shoot(browser, "request")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Approve')]"))
    shoot(browser, "confirm-approve")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[contains(., 'Yes, approve')]"))
    finish_change(browser, "approve-done")

    # Another owner's booking, by its URL: 403.
    browser.get(f"{base}/owner/bookings/{lees['id']}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not your booking"
    shoot(browser, "forbidden")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    assert requests.get(f"{base}/owner/bookings/{lees['id']}", cookies=cookies, timeout=10).status_code == 403

    # What the worker did, as `show` tells it.
    code, shown, _ = cli(env, "show", booking["id"])
    by_number = {s["number"]: s for s in shown["sessions"]}
    assert by_number[2]["status"] == "cancelled" and by_number[1]["start"] == new_start
    assert shown["refunded"] == "12.34" and shown["paid"] == "300.00"
    assert cli(env, "show", request_shown["id"])[1]["status"] == "confirmed"

    # Money: the page, and the CSV adds up to what Stripe holds; reconcile agrees.
    browser.get(f"{base}/owner/money")
    shoot(browser, "money")
    assert "$287.66" in text_of(browser)  # 300.00 captured - 12.34 refunded
    ledger = requests.get(f"{base}/owner/money/ledger.csv", cookies=cookies, timeout=10)
    assert ledger.status_code == 200
    rows = [r for r in csv.DictReader(io.StringIO(ledger.text)) if r["status"] == "succeeded"]
    cents = lambda kind: sum(round(float(r["amount"]) * 100) for r in rows if r["kind"] == kind)  # noqa: E731
    stripe_view = _stripe_totals(env, booking["id"])
    assert (cents("capture"), cents("refund")) == (stripe_view["captured"], stripe_view["refunded"]) == (30000, 1234)
    code, reconciled, _ = cli(env, "reconcile")
    assert code == 0 and reconciled["ok"], reconciled


def _container(env):
    from tests.conftest import make_settings
    from core.wiring import build_container

    settings = make_settings(Path(env["SESSIONPACK_VAR_DIR"]).parent, env["DATABASE_URL"],
                             secret_key=env["SECRET_KEY"], stripe_api_key=env["STRIPE_API_KEY"],
                             stripe_api_base=env["STRIPE_API_BASE"])
    return build_container(settings, busy_source=None)


def _set_passwords(env) -> None:
    for owner, password in (("kim", KIM_PASSWORD), ("lee", LEE_PASSWORD)):
        code, out, err = cli(env, "owner", "set-password", owner, stdin=password + "\n")
        assert code == 0 and out["password"] == "set", (out, err)


def _stripe_totals(env, booking_id: str) -> dict:
    """What Stripe holds for the booking: received on its intent and refunded from it."""
    from sqlalchemy import select

    from models import Payment

    c = _container(env)
    with c.session_factory() as db:
        intent = db.execute(select(Payment.intent_id).where(Payment.booking_id == booking_id)).scalar_one()
    summary = c.payments.intent_summary(intent)
    c.engine.dispose()
    refunded = sum(int(r["amount"]) for r in summary.get("refunds", []) if r.get("status") not in ("failed", "canceled"))
    return {"captured": int(summary.get("amount_received") or 0), "refunded": refunded}
