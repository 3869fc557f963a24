"""Every input string is bounded with a clear `invalid_request`, and nothing a sender made up is
stored or echoed in full (issue 16, finding 9: a 2 MB timezone was stored in `failure`)."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from services import lifecycle
from services.booking import submit_booking
from services.booking.request import parse_request
from services.errors import InvalidInput, ServiceError
from tests.support import apply_config, booking_request, daily_slots, drain, package_config

pytestmark = pytest.mark.integration

HUGE = "A" * (2 * 1024 * 1024)


def request_with(**changes) -> dict:
    req = booking_request(["2030-01-07T15:00:00Z"], event_type="pkg")
    for path, value in changes.items():
        target = req
        *parents, last = path.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return req


@pytest.mark.parametrize("path, value", [
    ("customer.timezone", HUGE), ("customer.timezone", "Europe/" + "x" * 100),
    ("customer.name", "N" * 201), ("customer.email", "a" * 320 + "@example.org"),
    ("request_id", "r" * 201), ("booking_page", "p" * 65), ("event_type", "e" * 65),
    ("payment_method", "pm_" + "x" * 300), ("slots", [HUGE]), ("slots", ["2030-01-07T15:00:00" + "0" * 100 + "Z"]),
])
def test_each_request_string_is_bounded(path, value):
    with pytest.raises(InvalidInput) as err:
        parse_request(request_with(**{path: value}))
    assert err.value.code in ("invalid_request", "missing_request_id")
    assert err.value.exit_code == 2 and len(err.value.message) < 300
    assert path.split(".")[-1] in err.value.message


def stored_text(c) -> int:
    """The longest text stored anywhere a refusal or a failure could end up."""
    queries = ["SELECT failure FROM bookings", "SELECT details FROM activity", "SELECT kwargs FROM task_outbox"]
    longest = 0
    with c.engine.connect() as conn:
        for q in queries:
            for (value,) in conn.execute(text(q)):
                longest = max(longest, len(json.dumps(value) if not isinstance(value, str) else value))
    return longest


def test_a_2mb_timezone_or_id_is_refused_and_never_stored(container, db_backend, clock):
    c = container
    apply_config(c, package_config(1))
    request = booking_request(daily_slots(clock(), 1))
    request["customer"]["timezone"] = HUGE
    booking_id = submit_booking(c, request)  # the queue's path: a failed booking says why
    drain(c)
    with c.engine.connect() as conn:
        failure = conn.execute(text("SELECT failure FROM bookings WHERE id = :i"), {"i": booking_id}).scalar()
    failure = json.loads(failure) if isinstance(failure, str) else failure
    assert failure["code"] == "invalid_request" and "customer.timezone" in failure["message"]
    for attempt in (
        lambda: lifecycle.cancel_sessions(c, [HUGE], admin=True, change_key=uuid.uuid4().hex),
        lambda: lifecycle.reschedule_session(c, HUGE, "2030-01-07T15:00:00Z", admin=True, change_key=uuid.uuid4().hex),
        lambda: lifecycle.reschedule_session(c, "ss_x", HUGE, admin=True, change_key=uuid.uuid4().hex),
        lambda: lifecycle.refund_booking(c, HUGE, "1.00", admin=True, change_key=uuid.uuid4().hex),
        lambda: lifecycle.refund_booking(c, "bk_x", HUGE, admin=True, change_key=uuid.uuid4().hex),
        lambda: lifecycle.cancel_sessions(c, ["ss_x"], tokens=[HUGE], change_key=uuid.uuid4().hex),
        lambda: lifecycle.cancel_sessions(c, ["ss_x"], admin=True, reason=HUGE, change_key=uuid.uuid4().hex),
        lambda: lifecycle.cancel_sessions(c, ["ss_x"], admin=True, change_key=HUGE),
    ):
        with pytest.raises(ServiceError) as refused:
            attempt()
        assert len(refused.value.message) < 600, refused.value.code
    # on a session that exists, a made-up new time is refused without being echoed or stored
    apply_config(c, package_config(1, reschedule={"allowed": True, "min_notice_hours": 0, "fee_percent": 0}))
    booked = submit_booking(c, booking_request(daily_slots(clock() + timedelta(days=3), 1)))
    drain(c)
    with c.engine.connect() as conn:
        session_id = conn.execute(text("SELECT id FROM sessions WHERE booking_id = :b"), {"b": booked}).scalar()
    with pytest.raises(InvalidInput) as err:
        lifecycle.reschedule_session(c, session_id, HUGE, admin=True, change_key=uuid.uuid4().hex)
    assert err.value.code == "invalid_request" and len(err.value.message) < 300
    assert stored_text(c) < 5000
