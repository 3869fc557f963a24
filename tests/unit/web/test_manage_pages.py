"""The cancel/reschedule page without a browser: FastAPI's TestClient on an in-process booking
($150 package of 3 sessions: $50 each, 50 % refund, 10 % fee, 24 hours' notice)."""
from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from services.lifecycle.preview import manage_object, manage_view
from tests.unit.web.conftest import book_package, token_of


class Form(HTMLParser):
    """Inputs, labels and headings of a page, for the accessibility checks."""

    def __init__(self, html: str):
        super().__init__()
        self.fields, self.labels, self.h1, self.checkboxes = [], set(), 0, {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h1":
            self.h1 += 1
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.fields.append(a)
        if tag == "input" and a.get("type") == "checkbox":
            self.checkboxes[a["value"]] = a


def page(client, token, **params):
    r = client.get(f"/manage/{token}", params=params)
    assert r.status_code == 200, r.text
    return r.text


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_keep_tab_lists_every_session_in_the_customers_zone(web, client):
    shown = book_package(web)
    r = client.get(f"/manage/{token_of(web, shown['sessions'][1])}")
    assert r.status_code == 200, r.text
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text
    text = text_of(r.text)
    # 10:00 in New York is 16:00 in Berlin, the customer's zone, named.
    assert "16:00–17:00 (Europe/Berlin)" in text and "Session 3 of 3" in text and "60 minutes" in text
    assert 'class="card is-selected"' in r.text  # the link's own session


def test_another_zone_can_be_chosen_and_an_unknown_one_is_ignored(web, client):
    shown = book_package(web)
    token = token_of(web, shown["sessions"][0])
    assert "10:00–11:00 (America/New_York)" in text_of(page(client, token, tz="America/New_York"))
    assert "(Europe/Berlin)" in text_of(page(client, token, tz="Mars/Olympus"))


def test_cancel_tab_shows_policy_and_exact_refund_per_session(web, client):
    shown = book_package(web)
    html = page(client, token_of(web, shown["sessions"][1]), tab="cancel")
    form = Form(html)
    assert form.h1 == 1
    assert all(f.get("id") in form.labels for f in form.fields), "every field has a label"
    assert "checked" in form.checkboxes[shown["sessions"][1]["id"]]  # pre-selected
    assert "checked" not in form.checkboxes[shown["sessions"][0]["id"]]
    assert text_of(html).count("Refund: $25.00") == 3
    assert "Cancel selected sessions" in html and 'name="csrf_token"' in html


def test_a_session_inside_the_notice_window_says_why_and_cannot_be_ticked(web, client, clock):
    shown = book_package(web)
    first = shown["sessions"][0]
    start = first["start"]
    # 23 hours before the first session.
    from services.availability import parse_instant
    clock.now = parse_instant(start) - timedelta(hours=23)
    html = page(client, token_of(web, first), tab="cancel")
    form = Form(html)
    assert "disabled" in form.checkboxes[first["id"]] and "checked" not in form.checkboxes[first["id"]]
    assert "less than 24 hours before the session" in text_of(html)
    assert "disabled" not in form.checkboxes[shown["sessions"][1]["id"]]


def test_cancelled_and_past_sessions_show_their_state_and_no_action(web, client, clock):
    from services.availability import parse_instant

    shown = book_package(web)
    clock.now = parse_instant(shown["sessions"][0]["end"]) + timedelta(minutes=1)
    view = manage_view(web, shown["sessions"][0]["id"])
    first = view.sessions[0]
    assert first.past and not first.can_cancel and not first.can_reschedule
    assert first.cancel_refusal.message == "This session has already taken place."
    html = page(client, token_of(web, shown["sessions"][0]), tab="reschedule")
    assert "Taken place" in html and f'id="move-{first.id}"' in html
    assert re.search(rf'id="move-{first.id}"[^>]*disabled', html)


def test_reschedule_times_by_day_with_the_fee_before_confirming(web, client):
    shown = book_package(web)
    second = shown["sessions"][1]
    token = token_of(web, second)
    html = page(client, token, tab="reschedule")
    assert "See available times" in html and "Fee: $5.00" in text_of(html)
    r = client.get(f"/manage/{token}/times", params={"session": second["id"]})
    assert r.status_code == 200, r.text
    text = text_of(r.text)
    assert "Move session 2" in text and "costs a fee of $5.00" in text
    form = Form(r.text)
    assert all(f.get("id") in form.labels for f in form.fields)
    times = re.findall(r'name="to" value="([^"]+)"', r.text)
    assert times and second["start"] not in times  # its own time is not offered as a move
    # Sessions 1 and 3 are busy: their starts are not offered either.
    assert shown["sessions"][0]["start"] not in times and shown["sessions"][2]["start"] not in times


def test_forged_token_is_404_and_a_form_without_csrf_is_400(web, client):
    shown = book_package(web)
    token = token_of(web, shown["sessions"][0])
    assert client.get(f"/manage/{token[:-2]}xx").status_code == 404
    assert client.get(f"/manage/{token}/times", params={"session": "ss_other"}).status_code == 200
    r = client.post(f"/manage/{token}/cancel", data={"session_ids": shown["sessions"][0]["id"]})
    assert r.status_code == 400


def test_manage_object_for_the_api(web):
    shown = book_package(web)
    obj = manage_object(web, shown["sessions"][0]["id"])
    s = obj["sessions"][0]
    assert (s["can_cancel"], s["refund_if_cancelled"], s["can_reschedule"], s["reschedule_fee"]) == (True, "25.00", True, "5.00")
    assert "activity" not in obj and obj["price"] == "150.00"


def test_a_reason_required_by_the_policy_is_marked_and_enforced(web, client):
    from services import lifecycle
    from services.errors import InvalidInput
    import uuid

    shown = book_package(web, cancel={"allowed": True, "min_notice_hours": 24, "refund_percent": 50,
                                      "reason_required": True})
    first = shown["sessions"][0]
    assert manage_view(web, first["id"]).reason_required
    html = page(client, token_of(web, first), tab="cancel")
    assert re.search(r'<textarea id="reason"[^>]*required', html)
    with pytest.raises(InvalidInput) as refused:
        lifecycle.cancel_sessions(web, [first["id"]], tokens=[token_of(web, first)], reason="  ",
                                  change_key=uuid.uuid4().hex)
    assert refused.value.code == "reason_required"


def test_cancel_one_session_from_the_page_then_the_confirmation_shows_the_refund(web, client):
    from tests.support import drain
    from tests.unit.web.conftest import csrf_of

    shown = book_package(web)
    second = shown["sessions"][1]
    token = token_of(web, second)
    html = page(client, token, tab="cancel")
    r = client.post(f"/manage/{token}/cancel", data={"csrf_token": csrf_of(html), "session_ids": second["id"],
                                                      "reason": "travelling", "tz": "Europe/Berlin"})
    assert r.status_code == 303, r.text
    where = r.headers["location"]
    assert where.startswith(f"/manage/{token}/changes/ch_")
    # Before the worker ran: "still working on it", with a link to refresh.
    waiting = client.get(where + "&wait=0")
    assert "We are still working on it" in waiting.text and "Refresh" in waiting.text
    drain(web)
    done = text_of(client.get(where + "&wait=0").text)
    assert "Your booking was changed" in done and "Session 2 Cancelled" in done
    assert "Refund $25.00" in done and "Refunded to your card: $25.00" in done
    after = text_of(page(client, token, tab="keep"))
    assert "refunded $25.00" in after and after.count("Cancelled") == 1


def test_refusals_are_plain_and_change_nothing(web, client, clock):
    from services.availability import parse_instant
    from tests.unit.web.conftest import csrf_of

    shown = book_package(web)
    first = shown["sessions"][0]
    token = token_of(web, first)
    html = page(client, token, tab="cancel")
    clock.now = parse_instant(first["start"]) - timedelta(hours=2)  # the window closed meanwhile
    r = client.post(f"/manage/{token}/cancel", data={"csrf_token": csrf_of(html), "session_ids": first["id"]})
    assert r.status_code == 409
    assert "Nothing was cancelled" in r.text and "less than 24 hours before the session" in text_of(r.text)
    r = client.post(f"/manage/{token}/cancel", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 400 and "Tick at least one session" in r.text
    r = client.post(f"/manage/{token}/cancel", data={"csrf_token": csrf_of(html), "session_ids": "ss_notours"})
    assert r.status_code == 404
    assert manage_view(web, first["id"]).sessions[0].status == "confirmed"


def test_reschedule_from_the_page_charges_the_fee_and_shows_the_new_time(web, client):
    from tests.support import drain
    from tests.unit.web.conftest import csrf_of

    shown = book_package(web)
    third = shown["sessions"][2]
    token = token_of(web, third)
    times = client.get(f"/manage/{token}/times", params={"session": third["id"], "tz": "Europe/Berlin"}).text
    to = re.findall(r'name="to" value="([^"]+)"', times)[-1]
    r = client.post(f"/manage/{token}/reschedule", data={"csrf_token": csrf_of(times), "session_id": third["id"],
                                                          "to": to, "tz": "Europe/Berlin"})
    assert r.status_code == 303, r.text
    drain(web)
    done = text_of(client.get(r.headers["location"] + "&wait=0").text)
    from services.availability import parse_instant
    from services.notifications.render import local_datetime
    assert f"to {local_datetime(parse_instant(to), 'Europe/Berlin')}" in done
    assert "Fee $5.00" in done and "Charged to your card: $5.00" in done
    # The same time again: refused in plain words, nothing changed.
    r = client.post(f"/manage/{token}/reschedule", data={"csrf_token": csrf_of(times), "session_id": third["id"],
                                                          "to": to})
    assert r.status_code == 409 and "already starts at that time" in text_of(r.text)


def test_reschedule_times_leave_out_days_that_are_fully_booked(web):
    from zoneinfo import ZoneInfo

    from services.booking import submit_booking
    from services.lifecycle.preview import reschedule_times
    from tests.support import apply_config, booking_request, daily_slots, drain, package_config

    config = package_config(1)
    config["booking_pages"][0]["event_types"][0]["scheduling"]["max_bookings_per_day"] = 1
    apply_config(web, config)
    day3, day4 = (daily_slots(web.clock() + timedelta(days=d), 1)[0] for d in (3, 4))
    ids = [submit_booking(web, booking_request([slot])) for slot in (day3, day4)]
    drain(web)
    mine = manage_view(web, _first_session(web, ids[0])).sessions[0]
    page = reschedule_times(web, mine.id, "America/New_York", from_day=mine.start.astimezone(
        ZoneInfo("America/New_York")).date())
    offered = {day for day, _ in page.days}
    full = manage_view(web, _first_session(web, ids[1])).sessions[0].start.astimezone(ZoneInfo("America/New_York")).date()
    assert full not in offered and mine.start.astimezone(ZoneInfo("America/New_York")).date() in offered


def _first_session(c, booking_id: str) -> str:
    from models import Booking

    with c.session_factory() as db:
        return db.get(Booking, booking_id).sessions[0].id


def test_a_request_awaiting_approval_can_be_withdrawn_from_the_page(web, client):
    """Manual booking mode: the page says the request waits for the owner and offers "Withdraw
    request" (CSRF); it goes through request_cancel with the customer's token, the worker's real
    cancel task (grant checked) withdraws the whole request and frees the slot."""
    from models import Activity, Booking
    from services.booking import submit_booking
    from services.booking.views import booking_object
    from tests.support import apply_config, booking_request, daily_slots, drain, package_config
    from tests.unit.web.conftest import csrf_of

    cfg = package_config(1)
    cfg["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = "manual"
    apply_config(web, cfg)
    booking_id = submit_booking(web, booking_request(daily_slots(web.clock() + timedelta(days=3), 1)))
    drain(web)
    with web.session_factory() as db:
        shown = booking_object(db, db.get(Booking, booking_id), web.settings)
    assert shown["status"] == "awaiting_approval"
    token = token_of(web, shown["sessions"][0])
    html = page(client, token)
    words = text_of(html)
    assert "Your request is waiting for the owner's confirmation" in words
    assert "Withdraw request" in words and f'action="/manage/{token}/withdraw"' in html
    form = Form(html)
    assert form.h1 == 1 and all(f["id"] in form.labels for f in form.fields)
    # Without the CSRF token: refused, nothing queued.
    assert client.post(f"/manage/{token}/withdraw", data={"reason": "x"}).status_code == 400
    r = client.post(f"/manage/{token}/withdraw", data={"csrf_token": csrf_of(html), "reason": "found another time"})
    assert r.status_code == 303, r.text
    where = r.headers["location"]
    assert where.startswith(f"/manage/{token}/changes/ch_")
    drain(web)
    done = text_of(client.get(where + "&wait=0").text)
    assert "Your request was withdrawn" in done and "Nothing was charged" in done
    with web.session_factory() as db:
        after = booking_object(db, db.get(Booking, booking_id), web.settings)
        actors = {a.actor for a in db.query(Activity).filter(Activity.booking_id == booking_id,
                                                               Activity.action == "booking.withdrawn")}
    assert after["status"] == "cancelled" and after["failure"]["code"] == "withdrawn" and actors == {"customer"}
    # Nothing left to withdraw: the form is gone, a second post is refused in words.
    again = page(client, token)
    assert "Withdraw request" not in again
    refused = client.post(f"/manage/{token}/withdraw", data={"csrf_token": csrf_of(html)})
    assert refused.status_code == 409 and "Nothing was withdrawn" in refused.text


def test_a_confirmed_booking_offers_no_withdrawal(web, client):
    shown = book_package(web)
    html = page(client, token_of(web, shown["sessions"][0]))
    assert "Withdraw request" not in html and "waiting for the owner" not in html
