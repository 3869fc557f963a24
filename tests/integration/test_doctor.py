"""`sessionpack doctor` against real things: the embedded defaults, a closed broker port,
localstripe, an SMTP port nobody answers, a task stuck in the outbox."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.devtools.localstripe import free_port
from tests.support import package_config
from tests.worker_process import cli

from .conftest import STRIPE_TEST_KEY, base_env, write_json

pytestmark = pytest.mark.integration


@pytest.fixture
def embedded_env(tmp_path):
    """The embedded defaults in tmp_path, migrated, with a package page (builtin conferencing)."""
    env = base_env(tmp_path)
    assert cli(env, "migrate")[0] == 0
    assert cli(env, "config", "apply", write_json(tmp_path, "config.json", package_config(3)))[0] == 0
    return env


def _checks(out: dict) -> dict[str, dict]:
    return {check["name"]: check for check in out["checks"]}


def _failed(out: dict) -> set[str]:
    return {check["name"] for check in out["checks"] if not check["ok"]}


def test_doctor_is_happy_on_a_healthy_embedded_setup(embedded_env):
    code, out, err = cli(embedded_env, "doctor")
    assert code == 0, err
    assert out["ok"] is True and _failed(out) == set()
    checks = _checks(out)
    assert {"database", "broker", "task outbox", "email outbox", "reminders", "email outbox dir", "stripe",
            "conferencing builtin", "conferencing in use"} <= set(checks)
    assert "not configured" in checks["stripe"]["detail"]
    # The table is for people, on stderr; --json leaves it out.
    assert "database" in err and "all checks passed" in err
    code, _, err = cli(embedded_env, "doctor", "--json")
    assert code == 0 and err.strip() == ""


def test_a_broker_on_a_closed_port_fails_the_broker_check(embedded_env):
    env = {**embedded_env, "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    code, out, err = cli(env, "doctor", timeout=60)
    assert code == 1
    assert out["ok"] is False and _failed(out) == {"broker"}
    assert "BROKER_URL" in _checks(out)["broker"]["detail"]
    assert "FAIL" in err


def test_configured_integrations_are_checked(embedded_env, stripe_url):
    env = {**embedded_env, "STRIPE_API_KEY": STRIPE_TEST_KEY, "STRIPE_API_BASE": stripe_url,
           "SMTP_URL": f"smtp://mailer:smtp-pa55word@127.0.0.1:{free_port()}"}
    code, out, _ = cli(env, "doctor", timeout=60)
    checks = _checks(out)
    assert code == 1 and _failed(out) == {"smtp"}
    assert checks["stripe"]["ok"] and stripe_url in checks["stripe"]["detail"]
    assert "smtp-pa55word" not in str(out)


def test_a_task_stuck_in_the_outbox_and_an_unmigrated_database_are_findings(tmp_path, embedded_env):
    from models import TaskOutbox
    from models.db import make_engine
    from sqlalchemy.orm import Session

    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'sessionpack.db'}")
    with Session(engine) as db:
        db.add(TaskOutbox(task_name="sessionpack.send_emails", kwargs={"ids": [1]},
                          created_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
        db.commit()
    engine.dispose()
    code, out, _ = cli(embedded_env, "doctor")
    assert code == 1 and _failed(out) == {"task outbox"}

    fresh = {**embedded_env, "SESSIONPACK_VAR_DIR": str(tmp_path / "fresh")}
    code, out, _ = cli(fresh, "doctor")
    assert code == 1 and "database" in _failed(out)
    assert "sessionpack migrate" in _checks(out)["database"]["detail"]


def test_doctor_warns_when_redis_would_lose_queued_messages(embedded_env, tmp_path):
    """A Redis without persistence (a private redis-server, as the reliability suite runs it)
    answers a warning, not a failure: doctor still exits 0. With an append-only file: no warning."""
    from tests.reliability.harness import PrivateRedis

    volatile = PrivateRedis(tmp_path / "volatile").start()
    try:
        code, out, err = cli({**embedded_env, "BROKER_URL": volatile.url}, "doctor")
        durability = _checks(out)["broker durability"]
        assert durability["ok"] is True and durability["warning"] is True
        assert "appendonly no" in durability["detail"] and "--appendonly yes" in durability["detail"]
        assert re.search(r"broker durability\s+WARN", err)
        assert _failed(out) == set() and code == 0
        volatile.flush()
        import redis

        client = redis.Redis(host="127.0.0.1", port=volatile.port)
        client.config_set("appendonly", "yes")
        client.config_set("appendfsync", "everysec")
        code, out, _ = cli({**embedded_env, "BROKER_URL": volatile.url}, "doctor", "--json")
        durability = _checks(out)["broker durability"]
        assert durability["warning"] is False and "appendfsync everysec" in durability["detail"]
        client.config_set("save", "3600 1")
        client.config_set("appendonly", "no")
        code, out, _ = cli({**embedded_env, "BROKER_URL": volatile.url}, "doctor", "--json")
        durability = _checks(out)["broker durability"]
        assert durability["warning"] is True and "only snapshots" in durability["detail"]
    finally:
        volatile.kill()


def test_doctor_finds_the_embedded_broker_durable(embedded_env):
    code, out, _ = cli(embedded_env, "doctor", "--json")
    durability = _checks(out)["broker durability"]
    assert code == 0 and (durability["ok"], durability["warning"]) == (True, False)


def test_an_accepted_request_no_worker_picked_up_is_a_finding(tmp_path, embedded_env):
    """`book` stored a request (no worker runs here); once it has waited three stall periods
    (SAGA_STALL_SECONDS), doctor names it."""
    from tests.support import booking_request, daily_slots

    env = {**embedded_env, "SAGA_STALL_SECONDS": "1"}
    request = booking_request(daily_slots(datetime.now(timezone.utc) + timedelta(days=3), 3))
    code, out, err = cli(env, "book", write_json(tmp_path, "request.json", request))
    assert code == 0 and out["status"] == "pending", err
    code, out, _ = cli({**embedded_env, "SAGA_STALL_SECONDS": "600"}, "doctor")
    assert _checks(out)["booking intake"]["ok"] is True
    time.sleep(3.2)
    code, out, _ = cli(env, "doctor")
    assert code == 1 and _failed(out) == {"booking intake"}
    assert request["request_id"] in _checks(out)["booking intake"]["detail"]
