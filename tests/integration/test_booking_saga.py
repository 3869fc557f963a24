"""The booking saga's logic on both databases, driven in-process through the task outbox.

Queue behaviour (real worker, redelivery, SIGKILL) is covered in test_worker_*.py.
"""
from datetime import datetime, timedelta

import pytest

from models import Booking, Meeting, OutboxEmail, Reminder, SagaStep, Session
from services.booking import compensate_booking, fail_booking, submit_booking
from services.booking.ids import booking_id_for
from services.booking.views import booking_object
from services.conferencing import ConferencingProvider
from services.errors import PermanentError
from tests.support import apply_config, booking_request, daily_slots, drain, iso, on, package_config


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def book(container, request):
    booking_id = submit_booking(container, request)
    drain(container)
    with container.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), container.settings)


@pytest.mark.parametrize("n", [1, 3, 10, 20])
def test_happy_path_confirms_every_session(container, db_backend, clock, n):
    apply_config(container, package_config(n))
    request = booking_request(daily_slots(clock() + timedelta(days=2), n))
    shown = book(container, request)
    assert shown["status"] == "confirmed" and shown["failure"] is None
    assert [s["number"] for s in shown["sessions"]] == list(range(1, n + 1))
    assert all(s["status"] == "confirmed" for s in shown["sessions"])
    assert [s["start"] for s in shown["sessions"]] == request["slots"]
    links = {s["conferencing"]["join_url"] for s in shown["sessions"]}
    assert len(links) == n  # one unique meeting per session
    assert shown["price"] == "0.00" and shown["booking_page"] == "coach" and shown["event_type"] == "pkg"
    actions = [a["action"] for a in shown["activity"]]
    for expected in ("booking.requested", "session.held", "meeting.created", "booking.confirmed"):
        assert expected in actions
    with container.session_factory() as db:
        emails = db.query(OutboxEmail).all()
        assert sorted(e.kind for e in emails) == ["booking_confirmed_customer", "booking_confirmed_owner"]
        assert all(e.status == "sent" for e in emails)
        # 2 reminders per session: 24 h and 1 h before, all in the future here
        assert db.query(Reminder).filter_by(status="scheduled").count() == 2 * n
        assert {s.step for s in db.query(SagaStep)} >= {"hold", "conferencing", "capture", "notify", "reminders"}


def test_builtin_meetings_fill_in_placeholders_an_earlier_release_left(container, db_backend, clock):
    """A booking in flight during a deploy: the old two-transaction step had written `creating`
    rows before the worker stopped; the one-transaction step fills them in (one row a session).
    Held step by step (`at_once=False`), as that release held every booking."""
    apply_config(container, package_config(3))
    booking_id = submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=2), 3)), at_once=False)
    with container.session_factory() as db:
        for session in db.query(Session).filter_by(booking_id=booking_id):
            db.add(Meeting(session_id=session.id, provider="builtin", status="creating"))
        db.commit()
    drain(container)
    with container.session_factory() as db:
        assert db.get(Booking, booking_id).status == "confirmed"
        meetings = db.query(Meeting).all()
        assert len(meetings) == 3 and all(m.status == "active" and m.join_url for m in meetings)


def test_same_request_three_times_makes_one_booking(container, db_backend, clock):
    apply_config(container, package_config(3))
    request = booking_request(daily_slots(clock() + timedelta(days=2), 3))
    ids = {submit_booking(container, dict(request)) for _ in range(3)}
    drain(container)
    assert ids == {booking_id_for(request["request_id"])}
    with container.session_factory() as db:
        assert db.query(Booking).count() == 1
        assert db.query(Session).count() == 3
        assert db.query(Meeting).count() == 3
        assert db.query(OutboxEmail).count() == 2


def test_a_taken_slot_fails_the_whole_package_and_holds_nothing(container, db_backend, clock):
    apply_config(container, package_config(3))
    first = daily_slots(clock() + timedelta(days=2), 3)
    assert book(container, booking_request(first))["status"] == "confirmed"
    clash = daily_slots(clock() + timedelta(days=5), 2) + [first[1]]
    shown = book(container, booking_request(clash))
    assert shown["status"] == "failed"
    assert shown["failure"]["code"] == "slot_unavailable" and first[1] in shown["failure"]["message"]
    assert shown["sessions"] == []
    with container.session_factory() as db:
        assert db.query(Session).count() == 3


@pytest.mark.parametrize("change, code", [
    (lambda r: r.update(slots=[]), "wrong_session_count"),
    (lambda r: r.update(slots=r["slots"] * 7), "wrong_session_count"),  # 21
    (lambda r: r.update(slots=r["slots"][:2]), "wrong_session_count"),
    (lambda r: r.update(slots=[r["slots"][0]] * 3), "duplicate_slot"),
    (lambda r: r["slots"].__setitem__(1, r["slots"][0].replace(":00:00", ":30:00")), "overlapping_slots"),
    (lambda r: r.update(slots=[iso(parse_iso(s) - timedelta(days=12)) for s in r["slots"]]), None),
    (lambda r: r["slots"].__setitem__(0, on("2026-11-30T12:30:00Z")), "slot_too_soon"),
    (lambda r: r["slots"].__setitem__(0, r["slots"][0].replace("T15:00", "T03:00")), "slot_outside_availability"),
    (lambda r: r["slots"].__setitem__(0, r["slots"][0].replace(":00:00Z", ":10:00Z")), "slot_off_grid"),
    (lambda r: r.update(booking_page="nobody"), "unknown_booking_page"),
    (lambda r: r.update(event_type="nothing"), "unknown_event_type"),
    (lambda r: r["customer"].update(email="not-an-email"), "invalid_email"),
    (lambda r: r["customer"].update(timezone="Moon/Base"), "invalid_timezone"),
    (lambda r: r["slots"].__setitem__(0, "2026-12-02 10:00"), "invalid_time"),
])
def test_bad_requests_get_their_own_code_and_write_nothing(container, db_backend, clock, change, code):
    apply_config(container, package_config(3))
    request = booking_request(daily_slots(clock() + timedelta(days=2), 3))
    change(request)
    shown = book(container, request)
    assert shown["status"] == "failed" and shown["sessions"] == []
    if code:
        assert shown["failure"]["code"] == code, shown["failure"]
    else:
        assert shown["failure"]["code"] in ("slot_in_past", "slot_too_soon")
    assert shown["failure"]["step"] == "validate"
    with container.session_factory() as db:
        assert db.query(Session).count() == 0 and db.query(Meeting).count() == 0


def test_missing_payment_method_on_a_priced_event(container, clock):
    apply_config(container, package_config(3, price="150.00"))
    shown = book(container, booking_request(daily_slots(clock() + timedelta(days=2), 3)))
    assert shown["failure"]["code"] == "payment_method_required"


class BrokenProvider(ConferencingProvider):
    """A provider that calls out (remote) and fails on the k-th create (permanently)."""

    name = "builtin"

    def __init__(self, inner, fail_on: int):
        self.inner, self.fail_on, self.created, self.deleted, self.calls = inner, fail_on, [], [], 0

    def create(self, request):
        self.calls += 1
        if self.calls == self.fail_on:
            raise PermanentError("provider_rejected", "the provider refused the meeting")
        details = self.inner.create(request)
        self.created.append(details.external_id)
        return details

    def delete(self, external_id):
        self.deleted.append(external_id)

    def update(self, external_id, request):
        return None

    def find(self, request):
        return None


def test_conferencing_failure_rolls_everything_back(container, db_backend, clock):
    apply_config(container, package_config(5))
    broken = BrokenProvider(container.conferencing["builtin"], fail_on=4)
    container.conferencing["builtin"] = broken
    shown = book(container, booking_request(daily_slots(clock() + timedelta(days=2), 5)))
    assert shown["status"] == "failed"
    assert shown["failure"] == {"step": "conferencing", "code": "provider_rejected", "message": "the provider refused the meeting"}
    assert all(s["status"] == "cancelled" and s["conferencing"] is None for s in shown["sessions"])
    assert sorted(broken.deleted) == sorted(broken.created)  # nothing left at the provider
    with container.session_factory() as db:
        assert db.query(Session).filter(Session.status.in_(["held", "confirmed"])).count() == 0
        kinds = [e.kind for e in db.query(OutboxEmail)]
        assert kinds == ["booking_failed_customer"]
    # the released slots can be booked again
    again = book(container, booking_request([s["start"] for s in shown["sessions"]]))
    assert again["status"] == "confirmed"


def test_compensation_is_idempotent(container, clock):
    apply_config(container, package_config(2))
    container.conferencing["builtin"] = BrokenProvider(container.conferencing["builtin"], fail_on=2)
    shown = book(container, booking_request(daily_slots(clock() + timedelta(days=2), 2)))
    compensate_booking(container, shown["id"])
    fail_booking(container, shown["id"], "capture", PermanentError("x", "y"))
    drain(container)
    with container.session_factory() as db:
        booking = db.get(Booking, shown["id"])
        assert booking.status == "failed" and booking.failure["step"] == "conferencing"
        assert db.query(OutboxEmail).count() == 1


def test_sent_task_outbox_rows_are_pruned_after_a_day(container, db_backend, clock):
    from models import TaskOutbox
    from core.wiring import prune_dispatched_tasks

    apply_config(container, package_config(2))
    book(container, booking_request(daily_slots(clock() + timedelta(days=2), 2)))
    with container.session_factory() as db:
        sent = db.query(TaskOutbox).filter(TaskOutbox.dispatched_at.is_not(None)).count()
        pending = db.query(TaskOutbox).filter(TaskOutbox.dispatched_at.is_(None)).count()
    assert sent > 0 and pending == 0
    assert prune_dispatched_tasks(container) == 0
    clock.advance(hours=25)
    assert prune_dispatched_tasks(container) == sent


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_a_step_running_twice_at_once_confirms_once(container, db_backend, clock):
    """Two copies of the capture step at once (a message redelivered while its first delivery
    still waits on a slow Stripe: seen once in the fault matrix as two `booking.confirmed`). The
    second copy waits on the booking's row lock and then finds the booking already confirmed.
    Here the first copy is played by a connection that holds the lock and confirms the row.
    Held step by step (`at_once=False`): a free builtin booking is otherwise confirmed by its hold."""
    import threading
    import time

    from sqlalchemy import text

    from models import Activity
    from services.booking.steps import capture_payment
    from tests.support import claim_next_task, default_task_handlers

    apply_config(container, package_config(2))
    booking_id = submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=2), 2)), at_once=False)
    handlers = default_task_handlers()
    while (claimed := claim_next_task(container)) is not None and claimed[0] != "sessionpack.capture_payment":
        handlers[claimed[0]](container, **claimed[1])
    assert claimed is not None, "the saga never reached its capture step"

    with container.engine.connect() as holder:
        holder.execute(text("SELECT id FROM bookings WHERE id = :id FOR UPDATE"), {"id": booking_id})
        second = threading.Thread(target=capture_payment, args=(container, booking_id))
        second.start()
        time.sleep(0.5)
        assert second.is_alive(), "the second copy did not wait for the booking's lock"
        holder.execute(text("UPDATE bookings SET status = 'confirmed', saga_step = 'done' WHERE id = :id"),
                       {"id": booking_id})
        holder.commit()
    second.join(10)
    assert not second.is_alive()
    with container.session_factory() as db:
        assert db.query(Activity).filter_by(booking_id=booking_id, action="booking.confirmed").count() == 0
        assert db.query(OutboxEmail).filter_by(booking_id=booking_id).count() == 0
