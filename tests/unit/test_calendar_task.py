"""The sync_calendar task's retry decision (its body is `sync_booking`, tested against Radicale)."""
import pytest

import tasks.calendar as task_module
from services.errors import PermanentError, TransientError


@pytest.fixture
def calls(monkeypatch):
    made = []
    monkeypatch.setattr(task_module, "container", lambda: "container")
    monkeypatch.setattr(task_module, "backoff", lambda *a, **k: 0)
    return made


def error_name(result) -> str:
    # Celery wraps our errors (their constructor takes a code and a message) when it stores them.
    return getattr(result.result, "exc_cls_name", type(result.result).__name__)


def failing(calls, exc, last_tries=None):
    def sync_booking(c, booking_id, last_try=True):
        calls.append(booking_id)
        if last_tries is not None:
            last_tries.append(last_try)
        raise exc
    return sync_booking


def test_transient_failures_retry_many_times_then_give_up(calls, monkeypatch):
    monkeypatch.setattr(task_module, "sync_booking", failing(calls, TransientError("calendar_unavailable", "down")))
    result = task_module.sync_calendar.apply(args=["bk_1"])
    assert result.failed() and error_name(result) == "TransientError"
    assert len(calls) == task_module.SYNC_MAX_RETRIES + 1


def test_a_resync_from_beat_tries_once(calls, monkeypatch):
    monkeypatch.setattr(task_module, "sync_booking", failing(calls, TransientError("calendar_unavailable", "down")))
    result = task_module.sync_calendar.apply(kwargs={"booking_id": "bk_1", "retry": False})
    assert result.failed() and error_name(result) == "TransientError" and calls == ["bk_1"]


def test_permanent_failures_are_not_retried(calls, monkeypatch):
    monkeypatch.setattr(task_module, "sync_booking", failing(calls, PermanentError("calendar_auth_failed", "no")))
    result = task_module.sync_calendar.apply(args=["bk_1"])
    assert result.failed() and error_name(result) == "PermanentError" and calls == ["bk_1"]


def test_success_returns_what_was_written(calls, monkeypatch):
    monkeypatch.setattr(task_module, "sync_booking", lambda c, booking_id, **_: {"written": [1], "deleted": []})
    assert task_module.sync_calendar.apply(args=["bk_1"]).result == {"written": [1], "deleted": []}


def test_only_the_last_try_is_marked_final(calls, monkeypatch):
    # sync_booking records each failure with `final` (services/calendar/sync.py): the re-sync
    # sweep leaves a booking alone while the task's own retries may still come.
    last_tries = []
    monkeypatch.setattr(task_module, "sync_booking",
                        failing(calls, TransientError("calendar_unavailable", "down"), last_tries))
    task_module.sync_calendar.apply(args=["bk_1"])
    assert last_tries == [False] * task_module.SYNC_MAX_RETRIES + [True]
    last_tries.clear()
    task_module.sync_calendar.apply(kwargs={"booking_id": "bk_1", "retry": False})
    assert last_tries == [True]
