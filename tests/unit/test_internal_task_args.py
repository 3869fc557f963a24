"""Internal tasks refuse a message whose arguments do not fit their body (worker/task_base.py):
an unknown keyword, a missing one or a stray positional argument is answered `invalid_request`
before anything runs, instead of a TypeError inside the worker (issue 16: internal tasks take ids
only). Run eagerly with `apply`: the refusal happens before the body, so nothing here needs I/O."""
from __future__ import annotations

import pytest

import tasks  # noqa: F401  (registers the tasks)
from services.task_registry import TASKS
from worker.app import app
from worker.task_base import SessionpackTask, argument_problem


def answer(name: str, args=(), kwargs=None):
    result = app.tasks[name].apply(args=list(args), kwargs=kwargs or {}, task_id="t-unit")
    assert result.state == "SUCCESS", result.traceback  # answered, not failed (and not retried)
    return result.result


@pytest.mark.parametrize("name, args, kwargs, words", [
    ("sessionpack.send_refunds", (), {"booking_id": "bk_x", "refunds": [], "amount_cents": 15000}, "'amount_cents'"),
    ("sessionpack.finish_cancellation", (), {"booking_id": "bk_x", "session_ids": ["ss_x"], "admin": True}, "'admin'"),
    ("sessionpack.move_meeting", (), {"is_admin": True}, "missing a required argument"),
    ("sessionpack.capture_payment", (), {"booking_id": "bk_x", "intent_id": "pi_x"}, "'intent_id'"),
    ("sessionpack.capture_payment", ("bk_x", "pi_x"), {}, "too many positional"),
    ("sessionpack.start_booking", (), {}, "missing a required argument: 'request_id'"),
    ("sessionpack.send_emails", (), {"ids": [1], "to": "evil@example.org"}, "'to'"),
    ("sessionpack.deliver_webhooks", (), {"ids": [1], "url": "https://evil.example"}, "'url'"),
    ("sessionpack.sync_calendar", (), {"booking_id": "bk_x", "caldav_url": "https://evil.example"}, "'caldav_url'"),
])
def test_an_internal_task_refuses_arguments_its_body_does_not_take(name, args, kwargs, words, caplog):
    got = answer(name, args, kwargs)
    assert got["error"]["code"] == "invalid_request" and words in got["error"]["message"]
    assert "nothing was done" in got["error"]["message"]
    assert "evil@example.org" not in caplog.text and "pi_x" not in caplog.text  # names, never values


def test_every_task_is_checked_and_the_public_ones_check_themselves():
    assert all(isinstance(task, SessionpackTask) for name, task in app.tasks.items() if name.startswith("sessionpack."))
    # the registered bodies' signatures are what is checked, the container left out
    run = app.tasks["sessionpack.send_refunds"].run
    assert argument_problem(run, (), {"booking_id": "bk", "refunds": []}) is None
    assert argument_problem(run, (), {"booking_id": "bk", "refunds": [], "notify": True}) is None  # older messages
    assert "send_refunds" in TASKS["sessionpack.send_refunds"].fn.__name__
    # a public task takes the raw message and answers with its own validation (tasks/args.py)
    assert argument_problem(app.tasks["sessionpack.cancel_sessions"].run, (1, 2), {"x": 1}) is None
