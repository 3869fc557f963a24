"""Queue behaviour with a real worker process: the embedded SQLite path, and PostgreSQL + Redis
with payments through localstripe."""
from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timedelta, timezone

import pytest
import redis

from tests.peers.localstripe_server import reset, running_localstripe
from tests.servers import ensure_redis
from tests.support import booking_request, daily_slots, package_config, truncate_all
from tests.worker_process import WorkerProcess, cli

pytestmark = pytest.mark.integration


def _base_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "BROKER_URL", "STRIPE_", "SMTP_", "ZOOM_", "WEBEX_", "GOTO_"))}
    env.update(SESSIONPACK_VAR_DIR=str(tmp_path / "var"), SECRET_KEY="test-secret-key-0123456789abcdef",
               PUBLIC_BASE_URL="https://book.example.com", PYTHONUNBUFFERED="1")
    return env


def _first_day() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=3)


def _write(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def stripe_url():
    with running_localstripe() as url:
        yield url


@pytest.fixture
def pg_redis_env(tmp_path, postgres_db, stripe_url):
    """PostgreSQL (our own database, emptied), a Redis database of our own, localstripe."""
    from models.db import make_engine

    ensure_redis()
    engine = make_engine(postgres_db.url)
    truncate_all(engine)
    engine.dispose()
    reset(stripe_url)
    redis_db = 11
    redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()
    env = _base_env(tmp_path)
    env.update(DATABASE_URL=postgres_db.url, BROKER_URL=f"redis://127.0.0.1:6379/{redis_db}",
               STRIPE_API_KEY="sk_test_sessionpack", STRIPE_API_BASE=stripe_url)
    return env


@pytest.fixture
def worker_factory(tmp_path):
    workers = []

    def start(env, **kwargs):
        w = WorkerProcess(env, tmp_path / "worker.log", **kwargs).start()
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def test_embedded_defaults_book_a_package_through_the_queue(tmp_path, worker_factory):
    env = _base_env(tmp_path)
    assert cli(env, "migrate")[0] == 0
    assert cli(env, "config", "apply", _write(tmp_path, "c.json", package_config(3)))[0] == 0
    worker_factory(env)
    request = booking_request(daily_slots(_first_day(), 3))
    code, shown, err = cli(env, "book", _write(tmp_path, "r.json", request), "--wait", "90")
    assert code == 0, err
    assert shown["status"] == "confirmed" and len(shown["sessions"]) == 3
    code, again, _ = cli(env, "show", shown["id"])
    assert code == 0 and again["status"] == "confirmed"
    # the consolidated emails land in the file outbox of the embedded default
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((tmp_path / "var" / "outbox").glob("*.eml"))) < 2:
        time.sleep(0.2)
    assert len(list((tmp_path / "var" / "outbox").glob("*.eml"))) == 2


def _intents(stripe_url):
    import requests

    return requests.get(f"{stripe_url}/v1/payment_intents", auth=("sk_test_sessionpack", ""), params={"limit": 100}).json()["data"]


def test_paid_package_on_postgres_and_redis(tmp_path, pg_redis_env, worker_factory, stripe_url):
    env = pg_redis_env
    assert cli(env, "migrate")[0] == 0
    assert cli(env, "config", "apply", _write(tmp_path, "c.json", package_config(3, price="150.00")))[0] == 0
    worker_factory(env)
    request = booking_request(daily_slots(_first_day(), 3), payment_method="pm_card_visa")
    code, shown, err = cli(env, "book", _write(tmp_path, "r.json", request), "--wait", "90")
    assert code == 0, err
    assert shown["status"] == "confirmed"
    assert (shown["price"], shown["paid"], shown["refunded"]) == ("150.00", "150.00", "0.00")
    assert [s["relative_cost"] for s in shown["sessions"]] == ["50.00", "50.00", "50.00"]
    intents = _intents(stripe_url)
    assert len(intents) == 1 and intents[0]["status"] == "succeeded" and intents[0]["amount"] == 15000


def test_declined_card_fails_and_holds_nothing(tmp_path, pg_redis_env, worker_factory, stripe_url):
    env = pg_redis_env
    cli(env, "migrate")
    cli(env, "config", "apply", _write(tmp_path, "c.json", package_config(3, price="150.00")))
    worker_factory(env)
    request = booking_request(daily_slots(_first_day(), 3), payment_method="pm_card_chargeCustomerFail")
    code, shown, _ = cli(env, "book", _write(tmp_path, "r.json", request), "--wait", "90")
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
    cli(env, "config", "apply", _write(tmp_path, "c.json", package_config(3, price="150.00")))
    worker_factory(env)
    request = booking_request(daily_slots(_first_day(), 3), payment_method="pm_card_visa")
    path = _write(tmp_path, "r.json", request)
    for _ in range(2):
        assert cli(env, "book", path)[0] == 0
    code, shown, _ = cli(env, "book", path, "--wait", "90")
    assert code == 0 and shown["status"] == "confirmed"
    import time
    time.sleep(2)  # let the duplicates run through
    code, activity, _ = cli(env, "activity", "--booking", shown["id"], "--limit", "500")
    actions = [a["action"] for a in activity["activity"]]
    assert actions.count("booking.confirmed") == 1 and actions.count("payment.captured") == 1
    assert actions.count("meeting.created") == 3
    assert len(_intents(stripe_url)) == 1
