"""The HTTP API and webhooks across real processes: the `web` process (uvicorn on a free port), a
real worker with beat on PostgreSQL + Redis, localstripe, and a local webhook receiver.

- booking through the API is answered by a signed `booking.confirmed` webhook;
- a queued message the worker refuses produces `request.refused` with the sender's request_id;
- a receiver that is down for a while gets the event later (beat's sweep retries);
- a forged signature on /webhooks/stripe gets 400 and changes nothing;
- a refund made directly on localstripe (as the dashboard would), announced by a hand-signed
  `charge.refunded`, shows up in `show` and `reconcile` stays clean;
- localstripe's own signed delivery (`payment_intent.succeeded`) is accepted and recorded once.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from services import webhooks
from services.devtools.localstripe import free_port
from tests.integration.conftest import write_json
from tests.support import booking_request, daily_slots, package_config
from tests.worker_process import PROJECT, cli

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HOOK_SECRET = "whsec_out_live_0123456789"
STRIPE_WHSEC = "whsec_in_live_0123456789"
BIN = Path(sys.executable).parent


class Receiver:
    """A frontend's webhook endpoint: keeps every event whose signature verifies; `down` makes it
    answer 503 (as a receiver being deployed would)."""

    def __init__(self):
        self.events, self.bad, self.down = [], [], False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if webhooks.verify(HOOK_SECRET, body, self.headers.get(webhooks.SIGNATURE_HEADER, "")):
                    receiver.events.append(json.loads(body))
                    self.send_response(200)
                else:
                    receiver.bad.append(body)
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events if predicate(e)]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no matching webhook in {timeout}s; got {[e['type'] for e in self.events]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class WebProcess:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "uvicorn"), "--factory", "web.app:create_app", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=PROJECT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"web exited: {log_path.read_text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("web not up")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def live(pg_redis_env, tmp_path, receiver, worker_factory):
    env = dict(pg_redis_env, COACH_WEBHOOK_SECRET=HOOK_SECRET, STRIPE_WEBHOOK_SECRET=STRIPE_WHSEC,
               WEBHOOK_RETRY_SECONDS="1", OUTBOX_SWEEP_SECONDS="1")
    assert cli(env, "migrate")[0] == 0
    cfg = package_config(1, price="150.00")
    cfg["booking_pages"][0]["webhooks"] = [{"url": receiver.url, "secret_env": "COACH_WEBHOOK_SECRET",
                                            "events": list(webhooks.EVENT_TYPES)}]
    code, _, err = cli(env, "config", "apply", write_json(tmp_path, "config.json", cfg))
    assert code == 0, err
    key = api_key(env)
    worker_factory(env, beat=True)
    web = WebProcess(env, tmp_path / "web.log")
    try:
        yield {"env": env, "web": web, "key": key, "tmp": tmp_path}
    finally:
        web.stop()


def api_key(env) -> str:
    code, made, err = cli(env, "apikey", "create", "--name", "live", "--admin")
    assert code == 0, err
    return made["key"]


def slot(days=3, hhmm="10:00"):
    return daily_slots(datetime.now(timezone.utc) + timedelta(days=days), 1, hhmm)


def book(live, days=3, hhmm="10:00", **kw) -> str:
    req = booking_request(slot(days, hhmm), payment_method="pm_card_visa", **kw)
    r = requests.post(live["web"].url + "/api/v1/bookings", json=req,
                      headers={"Authorization": f"Bearer {live['key']}"}, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["booking_id"]


def stripe_signed(payload: dict, secret=STRIPE_WHSEC) -> tuple[bytes, dict]:
    body = json.dumps(payload).encode()
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, {"Stripe-Signature": f"t={t},v1={mac}", "Content-Type": "application/json"}


def show(live, booking_id) -> dict:
    code, shown, err = cli(live["env"], "show", booking_id)
    assert code == 0, err
    return shown


def test_booked_through_the_api_then_told_by_a_signed_webhook(live, receiver):
    booking_id = book(live)
    confirmed = receiver.wait_for(lambda e: e["type"] == "booking.confirmed" and e["data"]["id"] == booking_id)[0]
    assert confirmed["data"]["status"] == "confirmed" and confirmed["data"]["paid"] == "150.00"
    assert confirmed["id"].startswith("evt_") and receiver.bad == []
    r = requests.get(f"{live['web'].url}/api/v1/bookings/{booking_id}",
                     headers={"Authorization": f"Bearer {live['key']}"}, timeout=10)
    assert r.json()["status"] == "confirmed"


def test_a_refused_queued_message_is_announced(live, receiver):
    from celery import Celery

    req = booking_request(slot(4), request_id="live-double-1")
    sender = Celery(broker=live["env"]["BROKER_URL"])
    sender.send_task("sessionpack.submit_booking", args=[json.dumps(req)])  # double-encoded, as some frontends do
    refused = receiver.wait_for(lambda e: e["type"] == "request.refused")[0]["data"]
    assert refused["request_id"] == "live-double-1" and refused["error"]["code"] == "invalid_request"
    assert refused["task"] == "sessionpack.submit_booking"


def test_receiver_down_for_a_while_gets_the_event_later(live, receiver):
    receiver.down = True
    booking_id = book(live, hhmm="12:00")
    deadline = time.monotonic() + 60
    while show(live, booking_id)["status"] != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the first delivery and a retry or two fail meanwhile
    assert receiver.events == []
    receiver.down = False
    got = receiver.wait_for(lambda e: e["type"] == "booking.confirmed" and e["data"]["id"] == booking_id)
    assert len({e["id"] for e in got}) == 1


def test_forged_stripe_signature_gets_400_and_changes_nothing(live):
    booking_id = book(live, hhmm="14:00")
    deadline = time.monotonic() + 60
    while (shown := show(live, booking_id))["status"] != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.5)
    intent = intent_of(live, booking_id)
    payload = {"id": "evt_forged", "type": "refund.updated", "object": "event",
               "data": {"object": {"id": "re_forged", "amount": 15000, "status": "succeeded",
                                   "payment_intent": intent}}}
    body, headers = stripe_signed(payload, secret="whsec_not_ours")
    r = requests.post(live["web"].url + "/webhooks/stripe", data=body, headers=headers, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "signature_invalid"
    assert show(live, booking_id)["refunded"] == "0.00" and shown["refunded"] == "0.00"


def intent_of(live, booking_id) -> str:
    import psycopg

    url = live["env"]["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT intent_id FROM payments WHERE booking_id = %s", (booking_id,)).fetchone()[0]


def test_dashboard_refund_announced_by_charge_refunded_lands_and_reconciles(live):
    import stripe

    booking_id = book(live, hhmm="16:00")
    deadline = time.monotonic() + 60
    while show(live, booking_id)["status"] != "confirmed" and time.monotonic() < deadline:
        time.sleep(0.5)
    intent = intent_of(live, booking_id)
    client = stripe.StripeClient(live["env"]["STRIPE_API_KEY"], base_addresses={"api": live["env"]["STRIPE_API_BASE"]})
    refund = client.v1.refunds.create({"payment_intent": intent, "amount": 3000})
    assert cli(live["env"], "reconcile", "--booking", booking_id)[0] == 1  # Stripe has it, the ledger not yet
    charge = {"id": "ch_" + secrets.token_hex(6), "object": "charge", "payment_intent": intent,
              "refunds": {"object": "list", "data": [{"id": refund.id, "object": "refund", "amount": 3000,
                                                      "status": "succeeded", "payment_intent": intent}]}}
    payload = {"id": "evt_" + secrets.token_hex(8), "type": "charge.refunded", "object": "event",
               "created": int(time.time()), "data": {"object": charge}}
    body, headers = stripe_signed(payload)
    r = requests.post(live["web"].url + "/webhooks/stripe", data=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["outcome"] == "recorded_1_refunds", r.text
    shown = show(live, booking_id)
    assert shown["refunded"] == "30.00"
    assert any(a["action"] == "refund.succeeded" and a["actor"] == "stripe" for a in shown["activity"])
    code, result, err = cli(live["env"], "reconcile", "--booking", booking_id)
    assert code == 0 and result["ok"] is True, (result, err)


def test_localstripe_own_signed_delivery_is_accepted(live):
    base = live["env"]["STRIPE_API_BASE"]
    r = requests.post(f"{base}/_config/webhooks/sessionpack", timeout=10, json={
        "url": live["web"].url + "/webhooks/stripe", "secret": STRIPE_WHSEC, "events": ["payment_intent.succeeded"]})
    assert r.status_code == 200, r.text
    booking_id = book(live, hhmm="18:00")
    import psycopg

    url = live["env"]["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + 60
    rows = []
    while time.monotonic() < deadline and not rows:
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT type, outcome FROM stripe_events WHERE type = 'payment_intent.succeeded'").fetchall()
        time.sleep(0.5)
    assert rows == [("payment_intent.succeeded", "ignored")], rows
    assert show(live, booking_id)["status"] == "confirmed"
