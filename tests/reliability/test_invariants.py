"""The invariant checker itself: silent on a consistent database, and each kind of damage the
fault matrix and the soak look for is reported (a checker that never complains proves nothing)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import Booking, LedgerEntry, Meeting, OutboxEmail, Reminder, Session
from services.booking import submit_booking
from tests.support import apply_config, booking_request, daily_slots, package_config

from .harness import run_tasks
from .invariants import check_invariants


@pytest.fixture
def booked(container, clock):
    """Two confirmed free 3-session bookings (builtin meetings, reminders) on SQLite."""
    apply_config(container, package_config(3, buffer_after_minutes=15))
    ids = []
    for hhmm in ("10:00", "14:00"):
        ids.append(submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=3), 3, hhmm))))
    run_tasks(container)
    with container.session_factory() as db:
        assert [db.get(Booking, b).status for b in ids] == ["confirmed", "confirmed"]
    container.ids = ids
    return container


def _sessions(c, booking_id):
    with c.session_factory() as db:
        return list(db.execute(select(Session).where(Session.booking_id == booking_id).order_by(Session.number)).scalars())


def _damage(c, statement):
    with c.engine.begin() as conn:
        conn.execute(statement)


def test_a_consistent_database_has_no_problems(booked):
    assert check_invariants(booked) == []


def test_a_pending_booking_is_stuck(booked):
    _damage(booked, update(Booking).where(Booking.id == booked.ids[0]).values(status="pending", saga_step="capture"))
    assert any("stuck pending" in p for p in check_invariants(booked))


def test_overlapping_sessions_are_found_buffers_included(booked):
    first, second = _sessions(booked, booked.ids[0])[0], _sessions(booked, booked.ids[1])[0]
    # Move the second booking's first session to end inside the first one's buffer.
    start = first.block_end - timedelta(minutes=70)
    _damage(booked, update(Session).where(Session.id == second.id).values(
        start_at=start, end_at=start + timedelta(hours=1), block_start=start, block_end=start + timedelta(minutes=75)))
    assert any("overlap" in p for p in check_invariants(booked))


def test_meetings_must_match_the_sessions(booked):
    s1, s2, _ = _sessions(booked, booked.ids[0])
    _damage(booked, update(Session).where(Session.id == s1.id).values(status="cancelled"))  # meeting still active
    _damage(booked, update(Meeting).where(Meeting.session_id == s2.id).values(status="deleted"))  # session left bare
    problems = check_invariants(booked)
    assert any(f"active but its session {s1.id}" in p for p in problems)
    assert any(f"confirmed session {s2.id}" in p and "no active" in p for p in problems)


def test_a_second_confirmation_email_is_found(booked):
    with booked.session_factory() as db:
        row = db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == booked.ids[0],
                                                   OutboxEmail.kind == "booking_confirmed_owner")).scalar_one()
        db.add(OutboxEmail(message_id=row.message_id + ".again", kind=row.kind, booking_id=row.booking_id,
                           to_addr=row.to_addr, subject=row.subject, text_body=row.text_body, html_body=row.html_body))
        db.commit()
    assert any("2 booking_confirmed_owner" in p for p in check_invariants(booked))


def test_a_reminder_for_a_cancelled_session_is_found(booked):
    s1 = _sessions(booked, booked.ids[0])[0]
    _damage(booked, update(Session).where(Session.id == s1.id).values(status="cancelled"))
    _damage(booked, update(Meeting).where(Meeting.session_id == s1.id).values(status="deleted"))
    assert any("reminder" in p and s1.id in p for p in check_invariants(booked))
    with booked.session_factory() as db:
        assert db.execute(select(Reminder).where(Reminder.session_id == s1.id, Reminder.status == "scheduled")).first()


def test_money_still_in_flight_is_found(booked):
    with booked.session_factory() as db:
        db.add(LedgerEntry(booking_id=booked.ids[0], kind="refund", amount_cents=100, currency="USD",
                           status="pending", idempotency_key="x-refund-1"))
        db.commit()
    assert any("still pending" in p for p in check_invariants(booked))
