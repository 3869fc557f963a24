"""Confirming at once (services/booking/at_once.py): a free booking whose provider makes no call
out is held, given its meetings and confirmed in the hold's transaction, on both databases.
Every guarantee of the step-by-step saga must still hold: the same rows and activity, a saga log
of every step, one delivery task, nothing written when the merged part fails, nothing done twice
by a redelivered message, manual mode still waiting for the owner."""
from datetime import timedelta

import pytest

from models import Activity, Booking, Meeting, OutboxEmail, Reminder, SagaStep, Session, TaskOutbox
from services.booking import approve_booking, submit_booking
from services.booking import confirm as confirm_module
from services.booking.intake import accept_booking_request
from services.booking.submit import start_booking
from tests.support import apply_config, booking_request, daily_slots, drain, package_config

N = 4


def state(container, booking_id: str) -> dict:
    """Everything a booking wrote, in a comparable form."""
    with container.session_factory() as db:
        booking = db.get(Booking, booking_id)
        return {
            "status": booking.status if booking else None,
            "saga_step": booking.saga_step if booking else None,
            "sessions": sorted(s.status for s in db.query(Session).filter_by(booking_id=booking_id)),
            "meetings": db.query(Meeting).join(Session, Session.id == Meeting.session_id)
                          .filter(Session.booking_id == booking_id).count(),
            "saga": {s.step: (s.outcome, s.attempts) for s in db.query(SagaStep).filter_by(booking_id=booking_id)},
            "activity": [a.action for a in db.query(Activity).filter_by(booking_id=booking_id).order_by(Activity.id)],
            "emails": sorted(e.kind for e in db.query(OutboxEmail).filter_by(booking_id=booking_id)),
            "reminders": db.query(Reminder).filter_by(booking_id=booking_id).count(),
            "tasks": [t.task_name for t in db.query(TaskOutbox).order_by(TaskOutbox.id)],
        }


def slots(clock, days: int = 2, hhmm: str = "10:00"):
    return daily_slots(clock() + timedelta(days=days), N, hhmm)


def test_a_free_builtin_booking_is_confirmed_in_its_hold_transaction(container, db_backend, clock):
    apply_config(container, package_config(N))
    booking_id = submit_booking(container, booking_request(slots(clock)))
    s = state(container, booking_id)  # before any other task ran
    assert (s["status"], s["saga_step"]) == ("confirmed", "done")
    assert s["sessions"] == ["confirmed"] * N and s["meetings"] == N and s["reminders"] == 2 * N
    assert s["saga"] == {step: ("done", 0) for step in ("hold", "conferencing", "capture", "notify", "reminders")}
    assert s["activity"] == (["booking.requested"] + ["session.held"] * N + ["meeting.created"] * N
                             + ["booking.confirmed"] + ["session.confirmed"] * N)
    assert s["emails"] == ["booking_confirmed_customer", "booking_confirmed_owner"]
    assert s["tasks"] == ["sessionpack.send_emails"]  # one delivery task, nothing else
    assert drain(container) == ["sessionpack.send_emails"]
    with container.session_factory() as db:
        assert {e.status for e in db.query(OutboxEmail)} == {"sent"}


def test_at_once_writes_what_the_step_by_step_saga_writes(container, db_backend, clock):
    apply_config(container, package_config(N))
    fast = submit_booking(container, booking_request(slots(clock, 2)))
    drain(container)
    slow = submit_booking(container, booking_request(slots(clock, 10)), at_once=False)
    ran = drain(container)
    assert ran[:2] == ["sessionpack.provision_conferencing", "sessionpack.capture_payment"]
    a, b = state(container, fast), state(container, slow)
    for key in ("status", "saga_step", "sessions", "meetings", "activity", "emails", "reminders"):
        assert a[key] == b[key], key
    assert set(a["saga"]) == set(b["saga"]) and {o for o, _ in a["saga"].values()} == {"done"}


def test_a_failure_inside_the_merged_transaction_leaves_nothing_of_it(container, db_backend, clock, monkeypatch):
    """The pivot fails after the meetings and the saga log were flushed: everything is rolled
    back, and the request is held the step-by-step way, exactly as a hold alone leaves it."""
    apply_config(container, package_config(N))
    real = confirm_module.compose.booking_confirmed
    calls = []

    def broken(view, **_kwargs):
        calls.append(view)
        raise RuntimeError("template broken")

    monkeypatch.setattr(confirm_module.compose, "booking_confirmed", broken)
    booking_id = submit_booking(container, booking_request(slots(clock)))
    assert len(calls) == 1
    s = state(container, booking_id)
    assert (s["status"], s["saga_step"]) == ("pending", "conferencing")
    assert s["sessions"] == ["held"] * N
    assert s["meetings"] == 0 and s["emails"] == [] and s["reminders"] == 0
    assert s["saga"] == {"hold": ("done", 0)}
    assert s["activity"] == ["booking.requested"] + ["session.held"] * N
    assert s["tasks"] == ["sessionpack.provision_conferencing"]

    # The steps then run one by one: once the cause is gone, the booking is confirmed.
    monkeypatch.setattr(confirm_module.compose, "booking_confirmed", real)
    drain(container)
    s = state(container, booking_id)
    assert s["status"] == "confirmed" and s["meetings"] == N
    assert s["activity"].count("booking.confirmed") == 1 and s["activity"].count("meeting.created") == N


def test_a_failure_that_stays_fails_the_booking_as_before(container, db_backend, clock, monkeypatch):
    apply_config(container, package_config(N))

    def broken(view, **_kwargs):
        raise RuntimeError("template broken")

    monkeypatch.setattr(confirm_module.compose, "booking_confirmed", broken)
    booking_id = submit_booking(container, booking_request(slots(clock)))
    drain(container)
    s = state(container, booking_id)
    assert s["status"] == "failed" and s["sessions"] == ["released"] * N
    assert s["emails"] == ["booking_failed_customer"]
    with container.session_factory() as db:
        assert db.get(Booking, booking_id).failure["step"] == "capture"


def test_a_redelivered_hold_message_does_nothing_twice(container, db_backend, clock):
    apply_config(container, package_config(N))
    request = booking_request(slots(clock))
    booking_id = submit_booking(container, dict(request))
    before = state(container, booking_id)
    assert submit_booking(container, dict(request)) == booking_id  # the broker delivers it again
    assert state(container, booking_id) == before
    drain(container)
    assert submit_booking(container, dict(request)) == booking_id  # and once more, after delivery
    after = state(container, booking_id)
    assert after["activity"] == before["activity"] and after["emails"] == before["emails"]
    assert after["tasks"] == before["tasks"]


def test_the_intake_path_confirms_at_once_and_a_repeated_start_does_nothing(container, db_backend, clock):
    apply_config(container, package_config(N))
    request = booking_request(slots(clock))
    accepted = accept_booking_request(container, request, source="cli")
    booking_id = start_booking(container, request["request_id"])
    assert booking_id == accepted.booking_id
    before = state(container, booking_id)
    assert before["status"] == "confirmed"
    assert start_booking(container, request["request_id"]) in (booking_id, None)
    assert state(container, booking_id) == before


def test_a_taken_slot_is_refused_at_once_and_holds_nothing(container, db_backend, clock):
    apply_config(container, package_config(N))
    first = slots(clock)
    assert state(container, submit_booking(container, booking_request(first)))["status"] == "confirmed"
    clash = daily_slots(clock() + timedelta(days=9), N - 1) + [first[2]]
    second = submit_booking(container, booking_request(clash))
    s = state(container, second)
    assert s["status"] == "failed" and s["sessions"] == [] and s["meetings"] == 0
    assert s["emails"] == ["booking_failed_customer"]


@pytest.mark.parametrize("mode", ["manual"])
def test_manual_mode_still_waits_for_the_owner(container, db_backend, clock, mode):
    cfg = package_config(1)
    cfg["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = mode
    apply_config(container, cfg)
    booking_id = submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=2), 1)))
    drain(container)
    s = state(container, booking_id)
    assert (s["status"], s["meetings"]) == ("awaiting_approval", 0)
    approve_booking(container, booking_id)
    ran = drain(container)
    assert "sessionpack.provision_conferencing" in ran and "sessionpack.capture_payment" in ran
    assert state(container, booking_id)["status"] == "confirmed"


def test_which_bookings_are_confirmed_at_once():
    """Only when nothing after the hold calls out: no price, automatic mode, and no meetings or
    a provider that makes them without an API (a provider that is not configured is left to the
    conferencing step, which fails the booking with `conferencing_unavailable`)."""
    from types import SimpleNamespace

    from services.booking.at_once import local_provider

    local, remote = SimpleNamespace(remote=False), SimpleNamespace(remote=True)
    c = SimpleNamespace(conferencing={"builtin": local, "jitsi": local, "zoom": remote})

    def et(provider="builtin", price=0, mode="automatic"):
        return SimpleNamespace(conferencing_provider=provider, price_cents=price, booking_mode=mode)

    assert local_provider(c, et()) is local and local_provider(c, et("jitsi")) is local
    assert local_provider(c, et("none")) is None
    assert local_provider(c, et("zoom")) is False
    assert local_provider(c, et("webex")) is False  # not configured
    assert local_provider(c, et(price=15000)) is False
    assert local_provider(c, et(mode="manual")) is False


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_two_copies_of_the_hold_message_at_once_make_one_booking(container, db_backend, clock):
    """A message redelivered while its first delivery is still running: both copies read no
    booking and plan it; a held table lock makes both reach their first write together. The
    intake's unique key lets one commit; the other rolls back and answers the same booking."""
    import threading
    import time

    from sqlalchemy import text

    apply_config(container, package_config(N))
    request = booking_request(slots(clock))
    answers = []
    with container.engine.connect() as holder:
        holder.execute(text("LOCK TABLE booking_requests IN SHARE ROW EXCLUSIVE MODE"))
        copies = [threading.Thread(target=lambda: answers.append(submit_booking(container, dict(request))))
                  for _ in range(2)]
        for t in copies:
            t.start()
        time.sleep(1.0)
        assert all(t.is_alive() for t in copies), "the copies did not wait for the lock"
        holder.commit()
    for t in copies:
        t.join(20)
    booking_id = booking_id_for_request(request)
    assert answers == [booking_id, booking_id]
    s = state(container, booking_id)
    assert s["status"] == "confirmed" and s["meetings"] == N
    assert s["activity"].count("booking.confirmed") == 1 and s["activity"].count("session.held") == N
    assert s["emails"] == ["booking_confirmed_customer", "booking_confirmed_owner"]
    assert s["tasks"] == ["sessionpack.send_emails"]


def booking_id_for_request(request: dict) -> str:
    from services.booking.ids import booking_id_for

    return booking_id_for(request["request_id"])
