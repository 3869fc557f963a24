"""The customer pages in a real browser: headless Debian Chromium (Selenium) against the real
`web` process (uvicorn), a real worker and localstripe, on the embedded defaults (SQLite files,
the SQLite broker) and on PostgreSQL + Redis.

The story: a $150 package of 3 sessions (50 % refund, 10 % fee, 24 hours' notice) whose first
session starts within 24 hours. The customer opens the manage link from the `.eml` the worker
wrote, sees why session 1 cannot be cancelled (and cannot submit it), cancels session 2
(25.00 before and after; the booking shows refunded 25.00), reschedules session 3 (5.00 fee, the
new time in their zone), opens the meeting page; a forged token gets 404, a form post without
its CSRF token 400. Screenshots at 1280 and 375 px go to tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import base64
import email
import email.policy
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.conftest import STRIPE_TEST_KEY, base_env, write_json
from tests.support import iso, local, package_config
from tests.web_process import WebProcess, chromium_driver, free_port
from tests.worker_process import cli

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
OWNER_ZONE, CUSTOMER_ZONE = "America/New_York", "Europe/Berlin"


@pytest.fixture(params=["embedded", "postgres_redis"])
def stack(request, tmp_path, stripe_url, worker_factory):
    """(env, web): a migrated, configured database, a worker and the web process on one stack."""
    from services.devtools.localstripe import reset

    if request.param == "embedded":
        reset(stripe_url)
        env = base_env(tmp_path)
        env.update(STRIPE_API_KEY=STRIPE_TEST_KEY, STRIPE_API_BASE=stripe_url)
    else:
        env = request.getfixturevalue("pg_redis_env")
    port = free_port()
    env.update(PORT=str(port), PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    assert cli(env, "migrate")[0] == 0
    config = package_config(3, price="150.00", provider="jitsi")
    code, _, err = cli(env, "config", "apply", write_json(tmp_path, "config.json", config))
    assert code == 0, err
    worker_factory(env)
    web = WebProcess(env, tmp_path / "web.log").start()
    yield request.param, env, web
    web.stop()
    assert "/manage/ss_" not in web.log() and "/meeting/ss_" not in web.log(), "a token in the access log"


def soon_slot(now: datetime) -> str:
    """A start 2 to 22 hours from now inside the page's hours (08:00-20:00 New York), on the grid:
    inside the 24-hour notice window, outside the 60-minute minimum notice."""
    zone = ZoneInfo(OWNER_ZONE)
    t = (now + timedelta(hours=2)).astimezone(zone).replace(second=0, microsecond=0)
    t += timedelta(minutes=(30 - t.minute % 30) % 30)
    while not (8 <= t.hour < 19):
        t += timedelta(minutes=30)
    assert t - now < timedelta(hours=23)
    return iso(t)


def book(env: dict, tmp_path: Path) -> dict:
    now = datetime.now(timezone.utc)
    later = [iso(local((now + timedelta(days=d)).astimezone(ZoneInfo(OWNER_ZONE)).date().isoformat(), "10:00"))
             for d in (3, 4)]
    request = {"request_id": f"browser-{time.time_ns()}", "booking_page": "coach", "event_type": "pkg",
               "customer": {"name": "Sam Lee", "email": "sam@example.org", "timezone": CUSTOMER_ZONE},
               "slots": [soon_slot(now), *later], "payment_method": "pm_card_visa"}
    code, shown, err = cli(env, "book", write_json(tmp_path, "request.json", request), "--wait", "90")
    assert code == 0 and shown["status"] == "confirmed", (shown, err)
    return shown


def manage_link_from_eml(env: dict, booking: dict, timeout: float = 60) -> str:
    """The first manage link in the customer's confirmation email, as the worker wrote it."""
    outbox = Path(env["SESSIONPACK_VAR_DIR"]) / "outbox"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] and "sam@example.org" in message["To"] and booking["id"] in message.as_string():
                text = message.get_body(("plain",)).get_content()
                links = re.findall(r"https?://[^\s<>\"]+/manage/[A-Za-z0-9_.\-]+", text)
                if links:
                    return links[0]
        time.sleep(0.5)
    raise AssertionError(f"no customer email with a manage link in {outbox}")


def show(env: dict, booking_id: str) -> dict:
    code, shown, err = cli(env, "show", booking_id)
    assert code == 0, err
    return shown


# -- what every page must satisfy -----------------------------------------------------------------

def check_accessible(driver) -> None:
    """One h1; every visible form field has a <label for>; no script anywhere."""
    from selenium.webdriver.common.by import By

    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1
    assert driver.find_elements(By.TAG_NAME, "script") == []
    labelled = {label.get_attribute("for") for label in driver.find_elements(By.TAG_NAME, "label")}
    for field in driver.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
        if field.get_attribute("type") in ("hidden", "submit"):
            continue
        assert field.get_attribute("id") in labelled, f"no label for {field.get_attribute('outerHTML')[:120]}"


def screenshots(driver, name: str) -> list[Path]:
    """The whole page at 1280 and at 375 px wide (a phone, with its viewport), as PNGs."""
    ARTIFACTS.mkdir(exist_ok=True)
    saved = []
    for width in (1280, 375):
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(height, 6000)})
        if width == 375:  # nothing may stick out sideways on a phone
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 375, name
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path = ARTIFACTS / f"{name}-{width}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        saved.append(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return saved


def go(driver, element) -> None:
    """Click a link or a submit button and wait for the next page to load."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 60).until(lambda d: _gone(old))


def _gone(element) -> bool:
    """Whether the page that held `element` was replaced. Chromium sometimes answers a question
    about an element of the page being replaced with an inspector error ("Node with given id
    does not belong to the document") instead of a stale-element error: that is gone too."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def text(driver) -> str:
    from selenium.webdriver.common.by import By

    return re.sub(r"\s+", " ", driver.find_element(By.TAG_NAME, "main").text)


def wait_until_changed(driver, timeout: float = 90) -> str:
    """On the confirmation page: follow "Refresh" until the change and its money are done."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while True:
        body = text(driver)
        if "Your booking was changed" in body and "still on its way" not in body or "Nothing was changed" in body:
            return body
        assert time.monotonic() < deadline, body
        links = driver.find_elements(By.PARTIAL_LINK_TEXT, "Refresh")
        go(driver, links[0]) if links else driver.refresh()


# -- the story -------------------------------------------------------------------------------------

def test_a_customer_manages_their_package_in_a_browser(stack, tmp_path):
    from selenium.webdriver.common.by import By

    backend, env, web = stack
    booking = book(env, tmp_path)
    s1, s2, s3 = booking["sessions"]
    link = manage_link_from_eml(env, booking)
    assert link.startswith(web.url + "/manage/")
    driver = chromium_driver()
    try:
        # Keep: every session in the customer's zone, named.
        driver.get(link)
        check_accessible(driver)
        page = text(driver)
        assert "Session 3 of 3" in page and f"({CUSTOMER_ZONE})" in page
        screenshots(driver, f"{backend}-keep")

        # Cancel: session 1 is inside the 24-hour window, says why, and cannot be submitted.
        go(driver, driver.find_element(By.LINK_TEXT, "Cancel"))
        check_accessible(driver)
        box1 = driver.find_element(By.ID, f"cancel-{s1['id']}")
        assert not box1.is_enabled() and not box1.is_selected()
        why1 = driver.find_element(By.ID, f"cancel-{s1['id']}-policy").text
        assert "less than 24 hours before the session" in why1
        assert "Refund: $25.00" in driver.find_element(By.ID, f"cancel-{s2['id']}-policy").text
        screenshots(driver, f"{backend}-cancel")
        for box in driver.find_elements(By.CSS_SELECTOR, "input[name=session_ids]"):
            if box.is_selected():
                box.click()
        box1.click()  # a disabled box cannot be ticked at all
        assert not box1.is_selected()
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Cancel selected sessions']"))
        assert "Tick at least one session" in text(driver)
        assert [s["status"] for s in show(env, booking["id"])["sessions"]] == ["confirmed"] * 3

        # Cancel session 2: 25.00 before, and after.
        driver.find_element(By.ID, f"cancel-{s2['id']}").click()
        driver.find_element(By.ID, "reason").send_keys("travelling that week")
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Cancel selected sessions']"))
        done = wait_until_changed(driver)
        assert "Session 2 Cancelled" in done and "Refund $25.00" in done and "Refunded to your card: $25.00" in done
        check_accessible(driver)
        screenshots(driver, f"{backend}-cancelled")
        after = show(env, booking["id"])
        assert after["refunded"] == "25.00" and after["sessions"][1]["status"] == "cancelled"

        # Reschedule session 3: the fee before confirming, the new time in the customer's zone.
        go(driver, driver.find_element(By.LINK_TEXT, "Back to your sessions"))
        go(driver, driver.find_element(By.LINK_TEXT, "Reschedule"))
        check_accessible(driver)
        assert "Fee: $5.00" in driver.find_element(By.ID, f"move-{s3['id']}-policy").text
        assert not driver.find_element(By.ID, f"move-{s2['id']}").is_enabled()  # cancelled: no action
        screenshots(driver, f"{backend}-reschedule")
        driver.find_element(By.ID, f"move-{s3['id']}").click()
        go(driver, driver.find_element(By.XPATH, "//button[normalize-space()='See available times']"))
        check_accessible(driver)
        assert "Moving this session costs a fee of $5.00" in text(driver)
        screenshots(driver, f"{backend}-times")
        choice = driver.find_elements(By.CSS_SELECTOR, "input[name=to]")[3]
        to = choice.get_attribute("value")
        choice.click()
        go(driver, driver.find_element(By.CSS_SELECTOR, "form[action$='/reschedule'] button[type=submit]"))
        done = wait_until_changed(driver)
        from services.availability import parse_instant
        from services.notifications.render import local_datetime
        assert f"to {local_datetime(parse_instant(to), CUSTOMER_ZONE)}" in done
        assert "Fee $5.00" in done and "Charged to your card: $5.00" in done
        screenshots(driver, f"{backend}-rescheduled")
        after = show(env, booking["id"])
        assert after["fees"] == "5.00" and after["sessions"][2]["start"] == to

        # The meeting page shows the join link.
        go(driver, driver.find_element(By.LINK_TEXT, "Back to your sessions"))
        meeting = [a for a in driver.find_elements(By.PARTIAL_LINK_TEXT, "Meeting details")]
        assert len(meeting) == 2  # sessions 1 and 3; the cancelled one has none
        go(driver, meeting[1])
        check_accessible(driver)
        join = after["sessions"][2]["conferencing"]["join_url"]
        assert join.startswith("https://meet.jit.si/sessionpack-")
        assert driver.find_element(By.LINK_TEXT, join).get_attribute("href") == join
        screenshots(driver, f"{backend}-meeting")

        # A forged token: a plain 404 page.
        forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        driver.get(forged)
        assert "Page not found" in text(driver)
        screenshots(driver, f"{backend}-404")
    finally:
        driver.quit()
    with httpx.Client() as http:
        assert http.get(forged).status_code == 404
        r = http.get(link)
        assert r.status_code == 200 and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store" and "script-src" not in r.headers["content-security-policy"]
        # The same form without its CSRF token (cookie or field): 400, nothing changed.
        assert http.post(link + "/cancel", data={"session_ids": s3["id"]}).status_code == 400
    assert show(env, booking["id"])["sessions"][2]["status"] == "confirmed"
