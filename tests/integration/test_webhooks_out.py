"""Outgoing webhooks in-process (SQLite and PostgreSQL): which outcomes become which events, the
rows written in the deciding transaction, the signature, retries with growing waits, giving up
after three days, redelivery, and `config apply` refusing what it does not know."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import Booking, WebhookDelivery
from services import lifecycle, webhooks
from services.booking import submit_booking
from services.errors import InvalidInput, ServiceError
from services.booking.intake import find_booking_object
from services.tokens import make_manage_token, make_token
from tests.support import apply_config, booking_request, daily_slots, drain, package_config

SECRET = "whsec_test_0123456789"
ALL = list(webhooks.EVENT_TYPES)


def hooked_config(events=None, **kwargs) -> dict:
    cfg = package_config(1, **kwargs)
    cfg["booking_pages"][0]["webhooks"] = [
        {"url": "https://frontend.example/hooks", "secret_env": "COACH_WEBHOOK_SECRET", "events": events or ALL}]
    return cfg


class Receiver:
    """Stands in for the endpoint: checks each signature and keeps the events; can be 'down'."""

    def __init__(self):
        self.events, self.down = [], False

    def __call__(self, row, secret):
        if self.down:
            raise ConnectionError("connection refused")
        header = webhooks.sign(secret, row.body)
        assert webhooks.verify(SECRET, row.body, header)
        self.events.append(json.loads(row.body))

    def types(self):
        return [e["type"] for e in self.events]


@pytest.fixture
def hooked(container, monkeypatch):
    monkeypatch.setenv("COACH_WEBHOOK_SECRET", SECRET)
    container.webhook_post = Receiver()
    return container


def book(c, clock, **kw) -> str:
    slot = daily_slots(clock() + timedelta(days=3), 1)
    booking_id = submit_booking(c, booking_request(slot, **kw))
    drain(c)
    return booking_id


def test_booking_confirmed_and_cancelled_reach_the_endpoint_signed(hooked, db_backend, clock):
    apply_config(hooked, hooked_config())
    booking_id = book(hooked, clock)
    receiver = hooked.webhook_post
    assert receiver.types() == ["booking.confirmed"]
    event = receiver.events[0]
    assert set(event) == {"id", "type", "created", "data"} and event["id"].startswith("evt_")
    assert event["data"]["id"] == booking_id and event["data"]["status"] == "confirmed"
    assert event["created"].endswith("Z")

    sid = event["data"]["sessions"][0]["id"]
    lifecycle.cancel_sessions(hooked, [sid], tokens=[make_token(hooked.settings.secret_key, sid)],
                              change_key=uuid.uuid4().hex, reason="ill")
    drain(hooked)
    assert receiver.types()[1:] == ["session.cancelled", "booking.cancelled"]
    cancelled = receiver.events[1]
    assert cancelled["data"]["session_id"] == sid and cancelled["data"]["sessions"][0]["status"] == "cancelled"
    with hooked.session_factory() as db:
        assert {r.status for r in db.execute(select(WebhookDelivery)).scalars()} == {"delivered"}


def test_webhooks_never_carry_the_customers_manage_link(hooked, db_backend, clock):
    # A webhook goes to an endpoint the owner configured on the booking page, and the owner never
    # receives the customer's manage link (CONTRACT): each session's manage_url is null there, its
    # read-only conferencing_info_url stays. The API's booking object keeps it (the frontend's).
    apply_config(hooked, hooked_config())
    booking_id = book(hooked, clock)
    with hooked.session_factory() as db:
        sid = db.get(Booking, booking_id).sessions[0].id
    lifecycle.cancel_sessions(hooked, [sid], tokens=[make_token(hooked.settings.secret_key, sid)],
                              change_key=uuid.uuid4().hex, reason="ill")
    drain(hooked)
    manage_token = make_manage_token(hooked.settings.secret_key, sid)
    with hooked.session_factory() as db:
        bodies = [r.body for r in db.execute(select(WebhookDelivery)).scalars()]
    assert len(bodies) == 3  # confirmed, session.cancelled, booking.cancelled
    for body in bodies:
        assert manage_token not in body and "/manage/" not in body
        for session in json.loads(body)["data"]["sessions"]:
            assert session["manage_url"] is None
            assert "/meeting/" in session["conferencing_info_url"]
    with hooked.session_factory() as db:
        shown = find_booking_object(db, booking_id, hooked.settings)
    assert shown["sessions"][0]["manage_url"].endswith(f"/manage/{manage_token}")


def test_only_subscribed_events_are_written(hooked, clock):
    apply_config(hooked, hooked_config(events=["booking.cancelled"]))
    book(hooked, clock)
    assert hooked.webhook_post.events == []
    with hooked.session_factory() as db:
        assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_page_without_webhooks_writes_nothing(hooked, clock):
    apply_config(hooked, package_config(1))
    book(hooked, clock)
    with hooked.session_factory() as db:
        assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_refused_request_is_announced_with_its_request_id(hooked, db_backend, clock):
    apply_config(hooked, hooked_config())
    req = booking_request(["2020-01-01T10:00:00Z"], request_id="web-refused-1")
    booking_id = submit_booking(hooked, req)
    drain(hooked)
    receiver = hooked.webhook_post
    assert sorted(receiver.types()) == ["booking.failed", "request.refused"]
    refused = next(e for e in receiver.events if e["type"] == "request.refused")["data"]
    assert refused["request_id"] == "web-refused-1" and refused["booking_id"] == booking_id
    assert refused["task"] == "sessionpack.submit_booking" and refused["error"]["code"]


def test_a_refused_change_is_announced(hooked, clock):
    apply_config(hooked, hooked_config(events=["request.refused"],
                                       reschedule={"allowed": False, "min_notice_hours": 0, "fee_percent": 0}))
    booking_id = book(hooked, clock)
    with hooked.session_factory() as db:
        sid = db.get(Booking, booking_id).sessions[0].id
    soon = daily_slots(clock() + timedelta(days=4), 1)[0]
    with pytest.raises(ServiceError) as err:
        lifecycle.reschedule_session(hooked, sid, soon, token=make_token(hooked.settings.secret_key, sid),
                                     change_key="chg-refused-1")
    drain(hooked)
    assert hooked.webhook_post.types() == ["request.refused"]
    data = hooked.webhook_post.events[0]["data"]
    assert data["request_id"] == "chg-refused-1" and data["error"]["code"] == err.value.code
    assert data["booking_id"] == booking_id


def test_a_rolled_back_change_sends_nothing(hooked, clock):
    apply_config(hooked, hooked_config())
    booking_id = book(hooked, clock)
    with hooked.uow() as uow:
        uow.record("booking.cancelled", booking_id=booking_id)
        uow.db.rollback()
        uow.record("config.applied", actor="admin")
        uow.commit()
    with hooked.session_factory() as db:
        assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 1  # the confirmation only


def test_retries_with_growing_waits_then_gives_up_after_three_days(hooked, clock):
    apply_config(hooked, hooked_config(events=["booking.confirmed"]))
    receiver = hooked.webhook_post
    receiver.down = True
    book(hooked, clock)
    waits = []

    def row():
        with hooked.session_factory() as db:
            return db.execute(select(WebhookDelivery)).scalar_one()

    while (current := row()).status == "pending":
        waits.append((current.next_attempt_at - clock()).total_seconds())
        clock.advance(seconds=max(0.0, waits[-1]) + 1)
        webhooks.deliver(hooked, post=hooked.webhook_post)
    assert current.status == "failed" and "connection refused" in current.last_error
    assert clock() - current.created_at >= webhooks.GIVE_UP_AFTER
    assert waits[1] < waits[3] < waits[6]  # growing (jittered, so not compared neighbour by neighbour)
    assert max(waits) <= webhooks.MAX_WAIT_SECONDS * 1.2
    with hooked.session_factory() as db:
        assert webhooks.backlog(db, clock())["failed"] == 1
        listed = webhooks.list_deliveries(db, status="failed")
    assert listed[0]["type"] == "booking.confirmed"

    # Redelivered once the receiver is back: the same event id and body.
    receiver.down = False
    with hooked.uow() as uow:
        webhooks.redeliver(uow, listed[0]["event_id"], clock())
        uow.commit()
    drain(hooked)
    assert [e["id"] for e in receiver.events] == [listed[0]["event_id"]]


def test_receiver_down_for_a_while_gets_the_event_later(hooked, clock):
    apply_config(hooked, hooked_config(events=["booking.confirmed"]))
    hooked.webhook_post.down = True
    book(hooked, clock)
    assert hooked.webhook_post.events == []
    hooked.webhook_post.down = False
    clock.advance(seconds=120)
    assert webhooks.deliver(hooked, post=hooked.webhook_post)["delivered"] == 1
    assert hooked.webhook_post.types() == ["booking.confirmed"]


def test_missing_secret_is_retried_not_sent_unsigned(hooked, clock, monkeypatch):
    monkeypatch.delenv("COACH_WEBHOOK_SECRET")
    apply_config(hooked, hooked_config(events=["booking.confirmed"]))
    book(hooked, clock)
    assert hooked.webhook_post.events == []
    with hooked.session_factory() as db:
        row = db.execute(select(WebhookDelivery)).scalar_one()
    assert row.status == "pending" and "COACH_WEBHOOK_SECRET" in row.last_error


@pytest.mark.parametrize("endpoint, needle", [
    ({"url": "https://x.example/h", "secret_env": "S", "events": ["booking.created"]}, "unknown event type 'booking.created'"),
    ({"url": "ftp://x.example/h", "secret_env": "S", "events": ["booking.confirmed"]}, ".url must be"),
    ({"url": "http://frontend.example/h", "secret_env": "S", "events": ["booking.confirmed"]},
     ".url must use https (events carry customers' names, emails and meeting details); change it to "
     "'https://frontend.example/h'"),
    ({"url": "http://10.0.0.5:8080/h", "secret_env": "S", "events": ["booking.confirmed"]}, "must use https"),
    ({"url": "http://127.0.0.1.example/h", "secret_env": "S", "events": ["booking.confirmed"]}, "must use https"),
    ({"url": "https:///nohost", "secret_env": "S", "events": ["booking.confirmed"]}, ".url must be an https URL"),
    ({"url": "https://x.example/h", "secret_env": "not a var", "events": ["booking.confirmed"]}, ".secret_env"),
    ({"url": "https://x.example/h", "secret_env": "S", "events": []}, ".events must list"),
    ({"url": "https://x.example/h", "secret": "S", "events": ["booking.confirmed"]}, "unknown setting"),
])
def test_config_apply_refuses_bad_webhooks(container, endpoint, needle):
    cfg = package_config(1)
    cfg["booking_pages"][0]["webhooks"] = [endpoint]
    with pytest.raises(InvalidInput) as err:
        apply_config(container, cfg)
    assert err.value.exit_code == 2 and err.value.code == "config_invalid"
    assert needle in err.value.message and "booking_pages[0](coach).webhooks[0]" in err.value.message


@pytest.mark.parametrize("url", ["https://frontend.example/h", "http://127.0.0.1:8080/hooks", "http://localhost/h",
                                 "http://[::1]:9000/h", "HTTPS://Frontend.Example/h"])
def test_config_apply_takes_https_and_loopback_http_webhooks(container, db_backend, url):
    cfg = package_config(1)
    cfg["booking_pages"][0]["webhooks"] = [{"url": url, "secret_env": "S", "events": ["booking.confirmed"]}]
    apply_config(container, cfg)


def test_an_http_endpoint_stored_earlier_is_not_sent_in_clear(hooked, clock):
    apply_config(hooked, hooked_config(events=["booking.confirmed"]))
    book(hooked, clock)
    with hooked.uow() as uow:
        uow.db.execute(WebhookDelivery.__table__.update().values(url="http://frontend.example/hooks",
                                                                 status="pending", next_attempt_at=clock()))
        uow.commit()
    webhooks.deliver(hooked)  # the real sender, which refuses before connecting
    with hooked.session_factory() as db:
        row = db.execute(select(WebhookDelivery)).scalar_one()
    assert row.status == "pending" and "must use https" in row.last_error


def test_signature_scheme():
    body = '{"id":"evt_1"}'
    header = webhooks.sign("s3cret", body, timestamp=1700000000)
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert webhooks.verify("s3cret", body, header, now=1700000100)
    assert not webhooks.verify("s3cret", body + " ", header, now=1700000100)
    assert not webhooks.verify("other", body, header, now=1700000100)
    assert not webhooks.verify("s3cret", body, header, now=1700009999)  # too old


def test_a_double_encoded_message_is_refused_to_its_page_with_its_request_id(hooked, clock):
    """A frontend that sends the request as a JSON string (double encoding) hears why, under its
    own request_id, instead of waiting forever."""
    import tasks  # noqa: F401  (registers the tasks)
    from core.wiring import set_container
    from worker.app import app

    apply_config(hooked, hooked_config(events=["request.refused"]))
    request = booking_request(daily_slots(clock() + timedelta(days=3), 1), request_id="web-double-1")
    set_container(hooked)
    try:
        result = app.tasks["sessionpack.submit_booking"].apply(args=(json.dumps(request),), task_id="celery-1").get()
    finally:
        set_container(None)
    assert result["error"]["code"] == "invalid_request"
    drain(hooked)
    assert hooked.webhook_post.types() == ["request.refused"]
    data = hooked.webhook_post.events[0]["data"]
    assert data["request_id"] == "web-double-1" and data["task"] == "sessionpack.submit_booking"
    assert data["error"]["code"] == "invalid_request" and data["booking_id"] is None


def test_cli_webhooks_list_redeliver_and_doctor(hooked, clock):
    from cli.doctor import webhook_outbox
    from tests.support import inline_cli

    apply_config(hooked, hooked_config(events=["booking.confirmed"]))
    hooked.webhook_post.down = True
    booking_id = book(hooked, clock)
    clock.advance(days=4)
    webhooks.deliver(hooked, post=hooked.webhook_post)  # past 3 days: given up
    ok, detail = webhook_outbox(hooked)
    assert not ok and "1 given up" in detail
    hooked.webhook_post.down = False
    with inline_cli(hooked) as run:
        code, out = run("webhooks", "list", "--status", "failed")
        assert code == 0 and [w["booking_id"] for w in out["webhooks"]] == [booking_id]
        event_id = out["webhooks"][0]["event_id"]
        assert out["webhooks"][0]["last_error"] and out["webhooks"][0]["attempts"] == 2
        code, out = run("webhooks", "redeliver", event_id)
        assert code == 0 and out == {"event_id": event_id, "deliveries": 1, "status": "pending"}
        code, out = run("webhooks", "redeliver", "evt_nope")
        assert code == 2 and out["error"]["code"] == "unknown_event"
        # (the inline task just tried the real URL, which does not resolve; the receiver here is in-process)
        clock.advance(seconds=120)
        webhooks.deliver(hooked, post=hooked.webhook_post)
        code, out = run("webhooks", "list")
        assert out["webhooks"][0]["status"] == "delivered"
    assert [e["id"] for e in hooked.webhook_post.events] == [event_id]
    assert webhook_outbox(hooked)[0] is True


def test_cli_apikey_create_list_revoke(container):
    from services import apikeys
    from tests.support import inline_cli

    apply_config(container, package_config(1))
    with inline_cli(container) as run:
        code, made = run("apikey", "create", "--name", "web-frontend", "--page", "coach")
        assert code == 0 and made["key"].startswith("sk_sp_") and made["pages"] == ["coach"] and not made["admin"]
        code, admin = run("apikey", "create", "--name", "ops", "--admin")
        assert code == 0 and admin["admin"] is True and admin["pages"] == []
        code, out = run("apikey", "create", "--name", "web-frontend")
        assert code == 2 and out["error"]["code"] == "key_name_taken"
        code, out = run("apikey", "create", "--name", "x", "--page", "nope")
        assert code == 2 and out["error"]["code"] == "unknown_booking_page"
        code, listed = run("apikey", "list")
        assert [k["name"] for k in listed["keys"]] == ["web-frontend", "ops"]
        assert made["key"] not in json.dumps(listed) and admin["key"] not in json.dumps(listed)
        with container.session_factory() as db:
            assert apikeys.authenticate(db, made["key"]).pages == ("coach",)
        code, out = run("apikey", "revoke", "web-frontend")
        assert code == 0 and out["revoked"]
        code, out = run("apikey", "revoke", "nobody")
        assert code == 2 and out["error"]["code"] == "unknown_key"
    with container.session_factory() as db:
        assert apikeys.authenticate(db, made["key"]) is None
        assert apikeys.authenticate(db, admin["key"]).admin is True
        # Only the hash is stored.
        from models import ApiKey
        assert made["key"] not in json.dumps([[r.key_hash, r.prefix] for r in db.query(ApiKey)])
