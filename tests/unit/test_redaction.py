"""What Celery reports of a task's arguments (worker/redaction.py): no token, grant, name or email,
and the booking id first."""
from __future__ import annotations

from services.booking.ids import booking_id_for
from services.tokens import make_manage_token
from worker.redaction import RedactingAMQP, describe

TOKEN = make_manage_token("k" * 32, "ss_abcdefghijklmnopqrstuvwx")
GRANT = "g1.admin.1900000000.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde"


def test_tokens_grants_names_and_emails_are_hidden_and_the_booking_id_comes_first():
    argsrepr, kwargsrepr = describe("sessionpack.cancel_sessions", [], {
        "session_ids": ["ss_abcdefghijklmnopqrstuvwx"], "tokens": [TOKEN], "grant": GRANT, "booking_id": "bk_1",
        "reason": f"call sam@example.org, my link is https://x/manage/{TOKEN}"})
    assert TOKEN not in kwargsrepr and GRANT not in kwargsrepr and "sam@example.org" not in kwargsrepr
    assert kwargsrepr.startswith("{'booking_id': 'bk_1'") and "ss_abcdefghijklmnopqrstuvwx" in kwargsrepr


def test_a_booking_request_shows_its_booking_id_and_request_id_but_not_the_customer():
    request = {"request_id": "web-1", "booking_page": "coach",
               "customer": {"name": "Sam Lee", "email": "sam@example.org", "timezone": "Europe/Berlin"},
               "slots": ["2030-01-01T10:00:00Z"], "payment_method": "pm_card_visa"}
    argsrepr, kwargsrepr = describe("sessionpack.submit_booking", [request], {})
    assert "Sam Lee" not in argsrepr and "sam@example.org" not in argsrepr and "pm_card_visa" not in argsrepr
    assert "web-1" in argsrepr and "Europe/Berlin" in argsrepr
    assert kwargsrepr == repr({"booking_id": booking_id_for("web-1")})


def test_token_shaped_text_anywhere_and_odd_shapes_are_hidden_and_bounded():
    argsrepr, kwargsrepr = describe("sessionpack.anything", [TOKEN, {"nested": [{"Token": "x"}]}], {"x" * 100: "y" * 5000})
    assert TOKEN not in argsrepr and "'x'" not in argsrepr
    assert len(kwargsrepr) <= 1100
    assert describe("sessionpack.send_emails", [], {"ids": [1, 2], "booking_ids": ["bk_a", "bk_b"]})[1] == \
        repr({"booking_id": ["bk_a", "bk_b"], "ids": [1, 2]})
    assert describe("x", None, None) == ("[]", "{}")


def test_every_message_this_app_publishes_carries_the_redacted_reprs():
    from worker.app import make_app

    app = make_app()
    assert isinstance(app.amqp, RedactingAMQP)
    message = app.amqp.as_task_v2("id-1", "sessionpack.reschedule_session", (), {"session_id": "ss_a", "to": "t",
                                   "token": TOKEN, "booking_id": "bk_9"}, kwargsrepr=repr({"token": TOKEN}),
                                  create_sent_event=True)
    assert TOKEN not in message.headers["kwargsrepr"] and "bk_9" in message.headers["kwargsrepr"]
    assert TOKEN not in message.sent_event["kwargs"]


def test_a_huge_argument_is_described_at_once():
    import time

    started = time.monotonic()
    describe("sessionpack.cancel_sessions", [], {"reason": "x" * 1_000_000, "session_ids": ["a" * 500_000]})
    assert time.monotonic() - started < 0.5
