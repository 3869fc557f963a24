"""JSON log lines and their redaction (worker/logging.py), without a worker."""
from __future__ import annotations

import io
import json
import logging

import pytest

from services.tokens import make_token
from tests.peers import base_settings
from worker.logging import (
    JsonFormatter,
    Redactor,
    json_handler,
    log_context,
    settings_secrets,
    task_fields,
)

SECRET_KEY = "unit-secret-key-0123456789abcdef"
STRIPE_KEY = "sk_test_51HxYzABCdefGHIjkl"


@pytest.fixture
def capture():
    """A logger writing redacted JSON lines to a buffer; returns (logger, lines())."""
    settings = base_settings(secret_key=SECRET_KEY, stripe_api_key=STRIPE_KEY, zoom_client_secret="zoom-client-s3cret",
                             webex_token="webex-t0ken-value", goto_token="goto-t0ken-value",
                             smtp_url="smtp://mailer:sm7p-pa55@mail.example.com:587",
                             database_url="postgresql+psycopg://app:db-pa55word@db:5432/sp")
    buffer = io.StringIO()
    logger = logging.getLogger("sessionpack.test.logging")
    logger.handlers = [json_handler(buffer, Redactor.from_settings(settings))]
    logger.propagate, logger.level = False, logging.DEBUG

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield logger, lines, buffer
    logger.handlers = []


def test_one_json_object_per_line_with_the_base_fields(capture):
    logger, lines, buffer = capture
    logger.info("first %s", "line")
    logger.warning("a message\nwith a newline")
    assert len(buffer.getvalue().splitlines()) == 2
    first, second = lines()
    assert first["message"] == "first line" and first["level"] == "INFO"
    assert first["logger"] == "sessionpack.test.logging"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert second["message"] == "a message\nwith a newline"


def test_context_fields_from_the_log_context_and_from_extra(capture):
    logger, lines, _ = capture
    with log_context(booking_id="bk_1", step="capture", task="sessionpack.capture_payment"):
        logger.info("inside")
        logger.info("override", extra={"session_id": "ss_9", "step": "conferencing"})
    logger.info("outside")
    inside, override, outside = lines()
    assert (inside["booking_id"], inside["step"], inside["task"]) == ("bk_1", "capture", "sessionpack.capture_payment")
    assert "session_id" not in inside
    assert (override["session_id"], override["step"], override["booking_id"]) == ("ss_9", "conferencing", "bk_1")
    assert not {"booking_id", "step", "task"} & set(outside)


def test_exceptions_are_one_line_and_other_record_attributes_never_appear(capture):
    logger, lines, buffer = capture
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        # Celery puts task arguments (manage tokens included) in `data`: they must not be printed.
        logger.exception("failed", extra={"data": {"kwargs": {"tokens": ["ss_x.secret"]}}})
    (entry,) = lines()
    assert "RuntimeError: boom" in entry["exception"]
    assert "data" not in entry and "ss_x.secret" not in buffer.getvalue()


def test_configured_secrets_are_redacted_in_messages_and_tracebacks(capture):
    logger, lines, buffer = capture
    logger.info("key %s, stripe %s, zoom %s", SECRET_KEY, STRIPE_KEY, "zoom-client-s3cret")
    logger.info("webex webex-t0ken-value goto goto-t0ken-value smtp sm7p-pa55 db db-pa55word")
    try:
        raise ValueError(f"cannot use {STRIPE_KEY}")
    except ValueError:
        logger.exception("gateway error")
    text = buffer.getvalue()
    for secret in (SECRET_KEY, STRIPE_KEY, "zoom-client-s3cret", "webex-t0ken-value", "goto-t0ken-value",
                   "sm7p-pa55", "db-pa55word"):
        assert secret not in text
    assert lines()[0]["message"] == "key [secret], stripe [secret], zoom [secret]"


def test_manage_tokens_are_redacted(capture):
    logger, _, buffer = capture
    token = make_token("another-key-than-ours", "ss_abcdefghijklmnop")
    logger.info("manage link https://book.example.com/manage/%s", token)
    assert token not in buffer.getvalue()
    assert "/manage/[token]" in buffer.getvalue()


@pytest.mark.parametrize("text, hidden", [
    ("card 4242424242424242 declined", "4242424242424242"),
    ("card[number]=5555555555554444&exp_month=12", "5555555555554444"),
    ("card 4000 0000 0000 0002 declined", "4000 0000 0000 0002"),
    ("card 4000-0000-0000-9995", "4000-0000-0000-9995"),
    ("amex 378282246310005", "378282246310005"),
])
def test_card_numbers_are_redacted(capture, text, hidden):
    logger, lines, buffer = capture
    logger.info(text)
    assert hidden not in buffer.getvalue() and "[card]" in lines()[0]["message"]


def test_numbers_that_are_not_cards_stay(capture):
    logger, lines, _ = capture
    logger.info("Task x succeeded in 0.01877312499983236s; 150.00 USD; slot 2026-12-07T14:00:00Z; id 1234567")
    assert lines()[0]["message"] == ("Task x succeeded in 0.01877312499983236s; 150.00 USD; "
                                     "slot 2026-12-07T14:00:00Z; id 1234567")


@pytest.mark.parametrize("text, hidden", [
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    ("headers {'Authorization': 'Basic dXNlcjpwYXNz'}", "dXNlcjpwYXNz"),
    ("sent bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("key sk_live_51AbCdEf0123 and rk_test_xyz987", "sk_live_51AbCdEf0123"),
    ("broker redis://:hunter2hunter@redis:6379/0", "hunter2hunter"),
])
def test_authorization_values_keys_and_url_passwords_are_redacted_without_configuration(text, hidden):
    buffer = io.StringIO()
    logger = logging.getLogger("sessionpack.test.logging.bare")
    logger.handlers, logger.propagate = [json_handler(buffer, Redactor())], False
    logger.warning(text)
    assert hidden not in buffer.getvalue()


def test_settings_secrets_skip_what_is_not_set():
    secrets = settings_secrets(base_settings(secret_key="k" * 20, smtp_url="smtp://relay:25"))
    assert secrets == ["k" * 20]


def test_task_fields_name_the_booking_session_and_step():
    from services.booking.ids import booking_id_for

    submit = task_fields("sessionpack.submit_booking", [{"request_id": "web-1"}], {})
    assert submit == {"task": "sessionpack.submit_booking", "step": "hold",
                      "booking_id": booking_id_for("web-1"), "session_id": None}
    capture = task_fields("sessionpack.capture_payment", (), {"booking_id": "bk_1"})
    assert (capture["booking_id"], capture["step"]) == ("bk_1", "capture")
    cancel = task_fields("sessionpack.cancel_sessions", (), {"session_ids": ["ss_1"], "tokens": ["t"]})
    assert (cancel["session_id"], cancel["step"], cancel["booking_id"]) == ("ss_1", "cancel", None)
    several = task_fields("sessionpack.cancel_sessions", (), {"session_ids": ["ss_1", "ss_2"]})
    assert several["session_id"] is None


def test_the_formatter_works_without_the_filter():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %d", (1,), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "plain 1"


def test_task_signals_bind_a_fresh_context_and_unbind_it(capture):
    from celery.signals import task_postrun, task_prerun

    class Task:  # the sender must be hashable; only the name is read
        name = "sessionpack.capture_payment"

    logger, lines, _ = capture
    task = Task()
    with log_context(session_id="ss_stale"):
        task_prerun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={"booking_id": "bk_7"})
        logger.info("in the task")
        task_postrun.send(sender=task, task_id="t-1", task=task, args=(), kwargs={}, retval=None, state="SUCCESS")
        logger.info("after the task")
    in_task, after = lines()
    assert (in_task["booking_id"], in_task["task_id"], in_task["step"]) == ("bk_7", "t-1", "capture")
    assert "session_id" not in in_task, "nothing from the surrounding context sticks to a task's lines"
    assert after == {**after, "session_id": "ss_stale"} and "task_id" not in after
