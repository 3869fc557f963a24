"""The logs of a full run (book, pay, cancel with refund, reschedule with fee) through a real
worker: every line is one JSON object, and no secret, manage token or card number is in them."""
from __future__ import annotations

import json

import pytest

from services.stripe_gateway import TEST_CARD_NUMBERS
from tests.support import daily_slots
from tests.worker_process import WorkerProcess, cli

from .conftest import SECRET_KEY, STRIPE_TEST_KEY, book_paid_package, first_day

pytestmark = pytest.mark.integration

# localstripe does not know this test id: the gateway creates the PaymentMethod from its card
# number, so the number really travels through the worker.
PAYMENT_METHOD = "pm_card_mastercard"


class LogfileWorker(WorkerProcess):
    """A worker whose log records go to `logfile` (celery's --logfile, given through click's
    CELERY_WORKER_LOGFILE); its own stdout and stderr (the banner) stay in `log_path`."""

    def __init__(self, env: dict, log_path, logfile, **kwargs):
        super().__init__({**env, "CELERY_WORKER_LOGFILE": str(logfile)}, log_path, **kwargs)
        self.logfile = logfile

    def log(self) -> str:
        records = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        return super().log() + records


@pytest.fixture
def logged_worker(tmp_path, pg_redis_env):
    # STRIPE_LOG=debug makes the Stripe library print every request body, card numbers included,
    # on stderr, which the worker redirects into its logs: the redaction has real work to do.
    env = {**pg_redis_env, "STRIPE_LOG": "debug"}
    worker = LogfileWorker(env, tmp_path / "worker.out", tmp_path / "worker.log").start()
    yield worker
    worker.stop()


def _token(session: dict) -> str:
    return session["manage_url"].rsplit("/", 1)[-1]


def test_a_full_run_logs_json_lines_without_secrets(tmp_path, pg_redis_env, logged_worker):
    env = pg_redis_env
    _, booking = book_paid_package(env, tmp_path, payment_method=PAYMENT_METHOD)
    first, second = booking["sessions"][0], booking["sessions"][1]
    code, after, err = cli(env, "cancel", first["id"], "--token", _token(first), "--wait", "60")
    assert code == 0 and after["refunded"] == "25.00", err
    new_start = daily_slots(first_day(), 5)[4]
    code, after, err = cli(env, "reschedule", second["id"], "--to", new_start, "--token", _token(second),
                           "--wait", "60")
    assert code == 0 and after["fees"] == "5.00", err
    logged_worker.stop()

    lines = logged_worker.logfile.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= set(e) for e in entries)

    everything = logged_worker.logfile.read_text() + (tmp_path / "worker.out").read_text(errors="replace")
    secrets = [SECRET_KEY, STRIPE_TEST_KEY, TEST_CARD_NUMBERS[PAYMENT_METHOD], TEST_CARD_NUMBERS["pm_card_visa"],
               *(_token(s) for s in booking["sessions"])]
    leaked = [s for s in secrets if s in everything]
    assert leaked == []
    # The redaction had something to do (the card's number went through the worker).
    assert any("[card]" in e["message"] for e in entries)

    # Each line names what it is about: the booking, the saga step, the task, the session.
    about_booking = [e for e in entries if e.get("booking_id") == booking["id"]]
    assert {"authorize", "conferencing", "capture"} <= {e.get("step") for e in about_booking}
    assert all(e["task"].startswith("sessionpack.") and e.get("task_id") for e in about_booking)
    steps_of = {(e.get("session_id"), e.get("step")) for e in entries}
    assert (first["id"], "cancel") in steps_of and (second["id"], "reschedule") in steps_of
