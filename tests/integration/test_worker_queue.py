"""Queue behaviour with a real worker process: the embedded SQLite path, and PostgreSQL + Redis
with payments through localstripe."""
from __future__ import annotations

import time

import pytest

from tests.integration.conftest import STRIPE_TEST_KEY, base_env, first_day, write_json
from tests.support import booking_request, daily_slots, package_config
from tests.worker_process import cli

pytestmark = pytest.mark.integration


def test_embedded_defaults_book_a_package_through_the_queue(tmp_path, worker_factory):
    env = base_env(tmp_path)
    assert cli(env, "migrate")[0] == 0
    assert cli(env, "config", "apply", write_json(tmp_path, "c.json", package_config(3)))[0] == 0
    worker_factory(env)
    request = booking_request(daily_slots(first_day(), 3))
    code, shown, err = cli(env, "book", write_json(tmp_path, "r.json", request), "--wait", "90")
    assert code == 0, err
    assert shown["status"] == "confirmed" and len(shown["sessions"]) == 3
    code, again, _ = cli(env, "show", shown["id"])
    assert code == 0 and again["status"] == "confirmed"
    # the consolidated emails land in the file outbox of the embedded default
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((tmp_path / "var" / "outbox").glob("*.eml"))) < 2:
        time.sleep(0.2)
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 2


def _intents(stripe_url):
    import requests

    return requests.get(f"{stripe_url}/v1/payment_intents", auth=(STRIPE_TEST_KEY, ""), params={"limit": 100}).json()["data"]


def test_paid_package_on_postgres_and_redis(tmp_path, pg_redis_env, worker_factory, stripe_url):
    env = pg_redis_env
    assert cli(env, "migrate")[0] == 0
    assert cli(env, "config", "apply", write_json(tmp_path, "c.json", package_config(3, price="150.00")))[0] == 0
    worker_factory(env)
    request = booking_request(daily_slots(first_day(), 3), payment_method="pm_card_visa")
    code, shown, err = cli(env, "book", write_json(tmp_path, "r.json", request), "--wait", "90")
    assert code == 0, err
    assert shown["status"] == "confirmed"
    assert (shown["price"], shown["paid"], shown["refunded"]) == ("150.00", "150.00", "0.00")
    assert [s["relative_cost"] for s in shown["sessions"]] == ["50.00", "50.00", "50.00"]
    intents = _intents(stripe_url)
    assert len(intents) == 1 and intents[0]["status"] == "succeeded" and intents[0]["amount"] == 15000


def test_declined_card_fails_and_holds_nothing(tmp_path, pg_redis_env, worker_factory, stripe_url):
    env = pg_redis_env
    cli(env, "migrate")
    cli(env, "config", "apply", write_json(tmp_path, "c.json", package_config(3, price="150.00")))
    worker_factory(env)
    request = booking_request(daily_slots(first_day(), 3), payment_method="pm_card_chargeCustomerFail")
    code, shown, _ = cli(env, "book", write_json(tmp_path, "r.json", request), "--wait", "90")
    assert code == 1
    assert shown["status"] == "failed" and shown["failure"]["step"] == "authorize"
    assert shown["failure"]["code"] == "card_declined"
    assert all(s["status"] == "cancelled" and s["conferencing"] is None for s in shown["sessions"])
    assert all(i["status"] in ("canceled", "requires_payment_method") for i in _intents(stripe_url))
    # the slots are free again
    code, slots, _ = cli(env, "slots", "coach/pkg", "--from", request["slots"][0][:10], "--to", request["slots"][0][:10])
    assert request["slots"][0] in slots["slots"]


def test_the_same_request_enqueued_three_times_books_once(tmp_path, pg_redis_env, worker_factory, stripe_url):
    env = pg_redis_env
    cli(env, "migrate")
    cli(env, "config", "apply", write_json(tmp_path, "c.json", package_config(3, price="150.00")))
    worker_factory(env)
    request = booking_request(daily_slots(first_day(), 3), payment_method="pm_card_visa")
    path = write_json(tmp_path, "r.json", request)
    for _ in range(2):
        assert cli(env, "book", path)[0] == 0
    code, shown, _ = cli(env, "book", path, "--wait", "90")
    assert code == 0 and shown["status"] == "confirmed"
    time.sleep(2)  # let the duplicates run through
    code, activity, _ = cli(env, "activity", "--booking", shown["id"], "--limit", "500")
    actions = [a["action"] for a in activity["activity"]]
    assert actions.count("booking.confirmed") == 1 and actions.count("payment.captured") == 1
    assert actions.count("meeting.created") == 3
    assert len(_intents(stripe_url)) == 1
