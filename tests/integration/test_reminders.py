"""Reminders from the database schedule: exactly the due ones, once, even with two dispatchers."""
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from models import OutboxEmail, Reminder, Session
from services.booking import submit_booking
from services.notifications.reminders import send_due
from tests.support import apply_config, booking_request, daily_slots, drain, package_config


def _book(container, clock, n=3, first_in=timedelta(days=3), reminders=None):
    apply_config(container, package_config(n, reminders=reminders))
    request = booking_request(daily_slots(clock() + first_in, n))
    booking_id = submit_booking(container, request)
    drain(container)
    with container.session_factory() as db:
        return [(s.id, s.start_at) for s in db.query(Session).filter_by(booking_id=booking_id).order_by(Session.number)]


def _reminder_emails(container):
    with container.session_factory() as db:
        return db.query(OutboxEmail).filter(OutboxEmail.kind.like("reminder%")).count()


def test_exactly_the_due_reminders_are_sent_once(container, db_backend, clock):
    sessions = _book(container, clock)
    first_start = sessions[0][1]
    clock.now = first_start - timedelta(minutes=1439)  # the 24 h reminder of session 1 is due
    assert send_due(container)["sent"] == 1
    assert send_due(container)["sent"] == 0
    clock.now = first_start - timedelta(minutes=59)  # now the 1 h one too
    assert send_due(container)["sent"] == 1
    assert _reminder_emails(container) == 2
    with container.session_factory() as db:
        sent = db.query(Reminder).filter_by(status="sent").all()
        assert {(r.session_id, r.before_minutes) for r in sent} == {(sessions[0][0], 1440), (sessions[0][0], 60)}


def test_a_reminder_already_past_at_booking_is_not_sent(container, clock):
    _book(container, clock, n=1, first_in=timedelta(hours=3))
    with container.session_factory() as db:
        statuses = {r.before_minutes: r.status for r in db.query(Reminder)}
    assert statuses == {1440: "skipped", 60: "scheduled"}


def test_late_reminders_go_out_only_before_the_session_starts(container, clock):
    sessions = _book(container, clock, n=2)
    clock.now = sessions[0][1] + timedelta(minutes=5)  # an outage: session 1 has begun
    counts = send_due(container)
    assert counts["skipped"] == 2  # both of session 1's reminders are too late now
    assert counts["sent"] == 1     # session 2's 24 h reminder is late but still useful


def test_cancelled_sessions_reminders_are_dropped(container, clock):
    sessions = _book(container, clock, n=2)
    with container.session_factory() as db:
        db.get(Session, sessions[0][0]).status = "cancelled"
        db.commit()
    clock.now = sessions[1][1] - timedelta(minutes=30)
    counts = send_due(container)
    assert counts["dropped"] == 2 and counts["sent"] == 2


@pytest.mark.parametrize("db_backend", ["postgres", "sqlite"])
def test_two_dispatchers_at_once_never_send_one_twice(container, db_backend, clock):
    sessions = _book(container, clock, n=20, first_in=timedelta(days=2))
    clock.now = sessions[-1][1] - timedelta(minutes=30)  # every reminder of every session is due
    with container.session_factory() as db:
        due = db.query(Reminder).filter_by(status="scheduled").count()
    assert due == 40
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: send_due(container, batch=7), range(2)))
    sent = sum(r["sent"] for r in results)
    skipped = sum(r["skipped"] for r in results)
    assert sent + skipped == 40
    assert _reminder_emails(container) == sent
    with container.session_factory() as db:
        assert db.query(Reminder).filter_by(status="scheduled").count() == 0
