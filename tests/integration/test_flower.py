"""Flower beside a real worker on Redis: an operator follows one booking through its chain."""
from __future__ import annotations

import subprocess
import time

import pytest
import requests

from services.devtools.localstripe import free_port
from tests.worker_process import BIN, PROJECT

from .conftest import book_paid_package

pytestmark = pytest.mark.integration

AUTH = ("operator", "flower-test-password")
SAGA_TASKS = {"sessionpack.authorize_payment", "sessionpack.provision_conferencing", "sessionpack.capture_payment"}


@pytest.fixture
def flower(pg_redis_env, tmp_path):
    """Flower on a free loopback port, authenticated the way production runs it (basic auth from
    FLOWER_BASIC_AUTH, which Flower reads as its --basic-auth option). Yields its base URL."""
    port = free_port()
    env = {**pg_redis_env, "FLOWER_BASIC_AUTH": f"{AUTH[0]}:{AUTH[1]}"}
    log = open(tmp_path / "flower.log", "wb")
    proc = subprocess.Popen([str(BIN / "celery"), "-A", "worker", "flower", "--address=127.0.0.1", f"--port={port}"],
                            env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _get(f"{base}/healthcheck").status_code == 200, 30, proc, tmp_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _get(url, **kwargs):
    try:
        return requests.get(url, timeout=5, **kwargs)
    except requests.ConnectionError:
        return requests.Response()  # status_code None: not up yet


def _wait_until(condition, seconds, proc=None, tmp_path=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"flower exited: {(tmp_path / 'flower.log').read_text()[-2000:]}")
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"not true after {seconds}s")


def _tasks_of(base: str, booking_id: str) -> dict[str, dict]:
    tasks = _get(f"{base}/api/tasks", auth=AUTH, params={"limit": 1000}).json()
    return {uuid: t for uuid, t in tasks.items()
            if (t.get("name") or "").startswith("sessionpack.")
            and booking_id in f"{t.get('args')} {t.get('kwargs')}"}


def test_flower_shows_each_task_of_a_booking_with_its_id(tmp_path, pg_redis_env, worker_factory, flower):
    worker_factory(pg_redis_env)
    # The API is closed without the credentials.
    assert _get(f"{flower}/api/tasks").status_code == 401
    _wait_until(lambda: _get(f"{flower}/api/workers", auth=AUTH, params={"refresh": 1}).json(), 30)

    request, booking = book_paid_package(pg_redis_env, tmp_path)

    def saga_seen():
        found = _tasks_of(flower, booking["id"])
        done = {t["name"] for t in found.values() if t.get("state") == "SUCCESS"}
        return found if SAGA_TASKS <= done else None

    found = _wait_until(saga_seen, 30)
    assert all(t["state"] == "SUCCESS" for t in found.values())
    # The CLI's submission (the intake's start_booking, carrying the request id) and the email
    # delivery name the booking too (worker/redaction.py): every task of the booking is listed.
    listed = _tasks_of(flower, booking["id"]).values()
    assert {"sessionpack.start_booking", "sessionpack.send_emails"} <= {t["name"] for t in listed}
    started = [t for t in listed if t["name"] == "sessionpack.start_booking"]
    assert started and all(str(t.get("kwargs")).startswith(f"{{'booking_id': '{booking['id']}'") for t in started)
    # Prometheus metrics for the same events.
    metrics = _get(f"{flower}/metrics", auth=AUTH).text
    assert 'flower_events_total{task="sessionpack.capture_payment"' in metrics
