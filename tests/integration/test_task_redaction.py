"""Tokens and personal data never reach the worker's task events (what Flower shows), retries and
non-Python senders included, and every task of a booking names its booking id there.

A real worker (-E) on PostgreSQL and Redis; raw messages published with kombu the way celery-node
sends them (no argsrepr/kwargsrepr); a reschedule whose fee charge fails once at Stripe, so the
task retries (Celery rebuilds the message); the events captured with Celery's event receiver.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.booking.ids import booking_id_for
from tests.broker import EventCapture, publish_raw
from tests.reliability.harness import ProxyRule, StripeProxy
from tests.support import booking_request, daily_slots

from .conftest import book_paid_package, first_day

pytestmark = pytest.mark.integration

# Tasks that act on one booking: each must show its booking id.
BOOKING_TASKS = {
    "sessionpack.submit_booking", "sessionpack.start_booking", "sessionpack.authorize_payment",
    "sessionpack.provision_conferencing", "sessionpack.capture_payment", "sessionpack.compensate_booking",
    "sessionpack.cancel_sessions", "sessionpack.reschedule_session", "sessionpack.refund_booking",
    "sessionpack.approve_booking", "sessionpack.decline_booking", "sessionpack.finish_cancellation",
    "sessionpack.send_refunds", "sessionpack.move_meeting", "sessionpack.send_emails", "sessionpack.sync_calendar",
    "sessionpack.deliver_webhooks",
}


def token_of(session: dict) -> str:
    return session["manage_url"].rsplit("/", 1)[-1]


def test_task_events_hide_tokens_and_customers_and_show_the_booking(tmp_path, pg_redis_env, worker_factory):
    with StripeProxy(pg_redis_env["STRIPE_API_BASE"]) as proxy:
        env = {**pg_redis_env, "STRIPE_API_BASE": proxy.url}
        broker = env["BROKER_URL"]
        with EventCapture(broker) as events:
            worker = worker_factory(env)
            request, booking = book_paid_package(env, tmp_path)
            first, second, _ = booking["sessions"]
            secrets_ = [token_of(first), token_of(second), request["customer"]["name"], request["customer"]["email"]]

            # A frontend's raw cancel with the customer's token, the customer's email in the reason.
            cancel_id = publish_raw(broker, "sessionpack.cancel_sessions", kwargs={
                "session_ids": [first["id"]], "tokens": [token_of(first)],
                "reason": f"write to {request['customer']['email']}"})
            assert events.finished(cancel_id)["type"] == "task-succeeded"

            # A raw reschedule whose fee charge fails at Stripe (twice: the client's own retry too):
            # the task retries, and Celery rebuilds and republishes its message.
            proxy.add(ProxyRule("POST", r"/v1/payment_intents", "fail", times=2, status=503))
            to = daily_slots(first_day() + timedelta(days=6), 1, "12:00")[0]
            move_id = publish_raw(broker, "sessionpack.reschedule_session", kwargs={
                "session_id": second["id"], "to": to, "token": token_of(second)})
            events.wait_for(lambda: [e for e in events.of(move_id) if e["type"] == "task-retried"], 60, "a retry")
            assert events.finished(move_id, 90)["type"] == "task-succeeded"
            assert len([e for e in events.of(move_id) if e["type"] == "task-received"]) >= 2

            # A booking request from a non-Python client: no argsrepr, the customer in clear in the body.
            other = booking_request(daily_slots(first_day() + timedelta(days=8), 3, "15:00"),
                                    payment_method="pm_card_visa", name="Zed Private", email="zed@example.net")
            secrets_ += ["Zed Private", "zed@example.net", "pm_card_visa"]
            submit_id = publish_raw(broker, "sessionpack.submit_booking", args=[other])
            events.finished(submit_id)
            events.wait_for(lambda: [e for e in events.named("sessionpack.capture_payment")
                                     if booking_id_for(other["request_id"]) in e.get("kwargs", "")], 60, "the saga")
        worker.stop()

    seen = events.all()
    dumped = json.dumps(seen, default=str)
    for secret in secrets_:
        assert secret not in dumped, f"{secret[:12]}... appears in the task events"
    received = [e for e in seen if e["type"] in ("task-received", "task-sent") and e.get("name") in BOOKING_TASKS]
    assert {e["name"] for e in received} >= {"sessionpack.cancel_sessions", "sessionpack.reschedule_session",
                                             "sessionpack.submit_booking", "sessionpack.send_emails",
                                             "sessionpack.finish_cancellation", "sessionpack.move_meeting"}
    unnamed = [(e["type"], e["name"], e["kwargs"]) for e in received if "'booking_id': 'bk_" not in e["kwargs"]]
    assert unnamed == []
    cancel = next(e for e in events.of(cancel_id) if e["type"] == "task-received")
    assert cancel["kwargs"].startswith(f"{{'booking_id': '{booking['id']}'") and "[redacted]" in cancel["kwargs"]
    submit = next(e for e in events.of(submit_id) if e["type"] == "task-received")
    assert booking_id_for(other["request_id"]) in submit["kwargs"] and other["request_id"] in submit["args"]
    # The retried message, rebuilt by the worker, was published with redacted reprs too.
    assert [e for e in events.of(move_id) if e["type"] == "task-sent"], "the retry's task-sent event"
    log = (tmp_path / "worker.log").read_text()
    assert token_of(first) not in log and token_of(second) not in log
