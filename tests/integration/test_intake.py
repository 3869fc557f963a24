"""Persist, then publish: `accept_booking_request` (the CLI's `book`, the HTTP API's
`POST /api/v1/bookings`) stores a request before it answers, the sweep publishes again what no
booking picked up, and a request_id answers only the very request it was first used for."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Activity, Booking, BookingRequest, OutboxEmail, TaskOutbox
from services.booking import intake, start_booking, submit_booking
from services.booking.ids import booking_id_for
from services.errors import Conflict, InvalidInput, OperationFailed
from tests.support import apply_config, booking_request, claim_next_task, daily_slots, drain, package_config

pytestmark = pytest.mark.integration


@pytest.fixture
def c(container, db_backend):
    apply_config(container, package_config(2))
    return container


def _request(c, **kw):
    return booking_request(daily_slots(c.clock() + timedelta(days=3), 2), **kw)


def _outbox(c):
    with c.session_factory() as db:
        return [(r.task_name, r.kwargs) for r in db.execute(select(TaskOutbox).order_by(TaskOutbox.id)).scalars()]


def test_accept_stores_the_request_and_its_publication_in_one_transaction(c):
    req = _request(c)
    answer = intake.accept_booking_request(c, req, source="cli")
    assert answer == (booking_id_for(req["request_id"]), "pending", True)
    with c.session_factory() as db:
        row = db.get(BookingRequest, req["request_id"])
        assert (row.state, row.source, row.booking_id) == ("queued", "cli", answer.booking_id)
        assert db.get(Booking, answer.booking_id) is None
        # `show` answers pending before any worker started it, never unknown_booking.
        shown = intake.find_booking_object(db, answer.booking_id, c.settings)
    assert shown["status"] == "pending" and shown["request_id"] == req["request_id"]
    assert shown["customer"]["email"] == "sam@example.org" and shown["sessions"] == []
    assert [a["action"] for a in shown["activity"]] == ["request.accepted"]
    # Only the request id travels: the worker reads the request from the row.
    assert _outbox(c) == [(intake.START_BOOKING, {"request_id": req["request_id"]})]

    drain(c)
    with c.session_factory() as db:
        assert db.get(Booking, answer.booking_id).status == "confirmed"
        assert intake.find_booking_object(db, answer.booking_id, c.settings)["status"] == "confirmed"


def test_the_same_request_again_answers_the_same_booking(c):
    req = _request(c)
    first = intake.accept_booking_request(c, req)
    # Written differently, the same request: other offsets, another order, the case of the email's domain.
    again = dict(req, slots=[s.replace("Z", "+00:00") for s in reversed(req["slots"])],
                 customer=dict(req["customer"], email="sam@EXAMPLE.org"))
    assert intake.accept_booking_request(c, again) == (first.booking_id, "pending", False)
    drain(c)
    assert intake.accept_booking_request(c, req) == (first.booking_id, "confirmed", False)
    with c.session_factory() as db:
        assert db.query(BookingRequest).count() == 1 and db.query(Booking).count() == 1


@pytest.mark.parametrize("change", ["customer", "slots", "payment_method"])
def test_a_reused_request_id_with_another_body_is_refused(c, change):
    req = _request(c)
    first = intake.accept_booking_request(c, req)
    other = _request(c, request_id=req["request_id"])
    if change == "customer":
        other["customer"] = {"name": "Eve Mallory", "email": "eve@example.net", "timezone": "UTC"}
    elif change == "slots":
        other["slots"] = daily_slots(c.clock() + timedelta(days=5), 2)
    else:
        other["payment_method"] = "pm_card_visa"
    with pytest.raises(Conflict) as refused:
        intake.accept_booking_request(c, other)
    assert refused.value.code == "request_id_reused" and refused.value.exit_code == 2
    assert first.booking_id not in refused.value.message  # nothing about the first booking
    drain(c)
    with pytest.raises(Conflict):  # after the booking exists too
        intake.accept_booking_request(c, other)


def test_a_booking_made_before_the_intake_is_compared_by_its_details(c):
    """A booking submitted straight to the worker before intake rows existed has no fingerprint:
    its customer, page and times decide."""
    req = _request(c)
    booking_id = submit_booking(c, req)
    with c.uow() as uow:  # as if made before the intake stored it
        uow.db.query(BookingRequest).delete()
        uow.commit()
    # confirmed already: a free builtin package is confirmed in its hold's transaction
    assert intake.accept_booking_request(c, req) == (booking_id, "confirmed", False)
    with pytest.raises(Conflict):
        intake.accept_booking_request(c, dict(req, customer={"name": "Eve", "email": "eve@example.net"}))


def test_a_refused_request_stores_nothing_and_may_be_corrected(c):
    req = _request(c)
    with pytest.raises(InvalidInput) as bad:
        intake.accept_booking_request(c, dict(req, event_type="nope"))
    assert bad.value.code == "unknown_event_type"
    with pytest.raises(InvalidInput) as short:
        intake.accept_booking_request(c, dict(req, slots=req["slots"][:1]))
    assert short.value.code == "wrong_session_count"
    with c.session_factory() as db:
        assert db.query(BookingRequest).count() == 0 and db.query(TaskOutbox).count() == 0
    assert intake.accept_booking_request(c, req).created


def test_a_slot_taken_is_refused_on_the_spot(c):
    intake.accept_booking_request(c, _request(c))
    drain(c)
    with pytest.raises(OperationFailed) as taken:
        intake.accept_booking_request(c, _request(c))
    assert taken.value.code == "slot_unavailable" and taken.value.exit_code == 1


def test_the_sweep_publishes_again_what_the_broker_forgot(c, clock):
    req = _request(c)
    answer = intake.accept_booking_request(c, req)
    assert claim_next_task(c) is not None  # sent to a broker that then forgot it
    grace = timedelta(seconds=120)
    assert intake.republish_unclaimed(c, grace) == {"republished": 0, "taken": 0}  # not yet
    clock.now += timedelta(seconds=121)
    assert intake.republish_unclaimed(c, grace) == {"republished": 1, "taken": 0}
    assert intake.republish_unclaimed(c, grace) == {"republished": 0, "taken": 0}  # it waits again
    # The first message turns up after all, then the republished one: one booking.
    start_booking(c, req["request_id"])
    drain(c)
    with c.session_factory() as db:
        assert db.get(Booking, answer.booking_id).status == "confirmed"
        assert db.query(Booking).count() == 1
    clock.now += timedelta(seconds=121)
    # The worker marked it taken when it held the booking: nothing left for the sweep.
    assert intake.republish_unclaimed(c, grace) == {"republished": 0, "taken": 0}
    with c.session_factory() as db:
        row = db.get(BookingRequest, req["request_id"])
        assert (row.state, row.body, row.publishes) == ("taken", None, 2)
    assert start_booking(c, req["request_id"]) is None  # a late duplicate does nothing


def test_unknown_ids_stay_unknown(c):
    with c.session_factory() as db:
        assert intake.find_booking_object(db, "bk_nothing", c.settings) is None


# -- messages published straight on the broker (the worker's side) ---------------------------------


def _refusals(c):
    with c.session_factory() as db:
        return [(a.booking_id, a.details["request_id"], a.details["code"]) for a in
                db.execute(select(Activity).where(Activity.action == "request.refused")).scalars()]


def _emails(c, booking_id):
    with c.session_factory() as db:
        return [(e.kind, e.to_addr) for e in db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == booking_id))
                .scalars()]


def test_a_message_reusing_a_request_id_changes_nothing_of_the_first_booking(c):
    req = _request(c)
    booking_id = submit_booking(c, req)
    drain(c)
    before = _emails(c, booking_id)
    forged = _request(c, request_id=req["request_id"], email="eve@example.net", name="Eve Mallory")
    forged["slots"] = daily_slots(c.clock() + timedelta(days=6), 2)
    assert submit_booking(c, forged) is None
    assert _refusals(c) == [(None, req["request_id"], "request_id_reused")]
    with c.session_factory() as db:
        booking = db.get(Booking, booking_id)
        assert (booking.status, booking.customer_email) == ("confirmed", "sam@example.org")
        assert db.query(Booking).count() == 1
    assert _emails(c, booking_id) == before  # nobody was emailed anything
    assert submit_booking(c, req) == booking_id  # the genuine repeat is still answered
    # A garbled message under the same request_id is refused the same way.
    assert submit_booking(c, {"request_id": req["request_id"], "booking_page": 7}) is None
    assert len(_refusals(c)) == 2


def test_a_message_cannot_take_over_a_request_the_intake_accepted(c):
    """The intake stored a request; before a worker starts it, a message with the same request_id
    and another body arrives on the broker: refused, and the stored request is booked as asked."""
    req = _request(c)
    answer = intake.accept_booking_request(c, req)
    forged = _request(c, request_id=req["request_id"], email="eve@example.net")
    assert submit_booking(c, forged) is None
    drain(c)
    with c.session_factory() as db:
        booking = db.get(Booking, answer.booking_id)
        assert (booking.status, booking.customer_email) == ("confirmed", "sam@example.org")
        assert db.get(BookingRequest, req["request_id"]).state == "taken"
    assert _refusals(c) == [(None, req["request_id"], "request_id_reused")]


def test_a_request_refused_at_its_hold_tells_the_customer(c):
    """Another request took a slot after the intake accepted this one: the booking fails at its
    hold, and the customer gets one "we could not book" email saying why."""
    first, second = _request(c), _request(c, email="kim@example.org")
    intake.accept_booking_request(c, first)
    intake.accept_booking_request(c, second)  # accepted: the first holds nothing yet
    drain(c)
    second_id = booking_id_for(second["request_id"])
    with c.session_factory() as db:
        failed = db.get(Booking, second_id)
        assert (failed.status, failed.failure["code"]) == ("failed", "slot_unavailable")
        email = db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == second_id)).scalar_one()
    assert (email.kind, email.to_addr) == ("booking_failed_customer", "kim@example.org")
    assert "one of the times you chose was taken by another booking just before yours" in email.text_body
    assert "nothing was charged" in email.text_body
    assert submit_booking(c, second) == second_id  # a redelivery: no second email
    assert len(_emails(c, second_id)) == 1


def test_a_message_for_an_unknown_page_fails_without_an_email(c):
    req = dict(_request(c), booking_page="nope")
    booking_id = submit_booking(c, req)
    with c.session_factory() as db:
        assert db.get(Booking, booking_id).failure["code"] == "unknown_booking_page"
    assert _emails(c, booking_id) == []


def test_doctor_sees_requests_no_worker_picked_up(c, clock):
    req = _request(c)
    intake.accept_booking_request(c, req)
    with c.session_factory() as db:
        assert intake.waiting(db, c.clock(), timedelta(minutes=6)) == (0, None)
    clock.now += timedelta(minutes=7)
    with c.session_factory() as db:
        assert intake.waiting(db, c.clock(), timedelta(minutes=6)) == (1, req["request_id"])
    drain(c)
    with c.session_factory() as db:
        assert intake.waiting(db, c.clock(), timedelta(minutes=6)) == (0, None)


def test_the_sweep_leaves_a_publication_the_broker_never_got_to_the_outbox(c, clock):
    """The broker was down when the request was accepted: its publication waits in the task
    outbox (the outbox sweep sends it); the intake sweep adds no second one meanwhile."""
    req = _request(c)
    intake.accept_booking_request(c, req)  # no broker in this container: nothing was sent
    clock.now += timedelta(seconds=121)
    assert intake.republish_unclaimed(c, timedelta(seconds=120)) == {"republished": 0, "taken": 0}
    assert _outbox(c) == [(intake.START_BOOKING, {"request_id": req["request_id"]})]


class _BrokerDownOnce:
    """A Celery app stand-in whose broker refuses the first message, then takes every one."""

    def __init__(self):
        self.sent, self.refused = [], 0

    def send_task(self, name, kwargs=None, **_options):
        if not self.refused:
            self.refused += 1
            raise ConnectionError("broker down")
        self.sent.append((name, kwargs))


def test_a_waiting_caller_publishes_again_what_the_broker_refused(c):
    """`sessionpack book --wait` does not depend on beat's sweep (the demo runs none): while it
    waits it sends again the publication the broker refused when the request was accepted."""
    c.celery_app = _BrokerDownOnce()
    req = _request(c)
    answer = intake.accept_booking_request(c, req)
    assert c.celery_app.refused == 1 and not intake.published(c, answer.booking_id)
    assert intake.publish_again(c, answer.booking_id) is True
    assert c.celery_app.sent == [(intake.START_BOOKING, {"request_id": req["request_id"]})]
    assert intake.publish_again(c, answer.booking_id) is True  # nothing waits: nothing sent twice
    assert len(c.celery_app.sent) == 1


def test_the_cli_wait_nudges_until_the_publication_is_sent(c):
    from cli.common import wait_for

    calls = []

    def nudge():
        calls.append(1)
        return len(calls) >= 2

    assert wait_for(c, "bk_unknown", 2.5, lambda b: True, nudge=nudge) is None
    assert len(calls) == 2  # about once a second, and not again once it succeeded


def test_a_garbled_broker_message_cannot_take_a_page_scoped_request_id(c):
    """'/' separates a page-scoped key's namespace (`<page>/<request_id>`); a request_id never
    holds one. A refused message from the broker whose request_id does ('coach/web-1') must not
    be recorded under that key: the page's own frontend would then be answered request_id_reused
    for its first use of web-1."""
    squat = {"request_id": "coach/web-1", "booking_page": "coach"}  # invalid: no customer, no slots
    assert submit_booking(c, squat) is None
    with c.session_factory() as db:
        assert db.get(BookingRequest, "coach/web-1") is None
        assert db.get(Booking, booking_id_for("coach/web-1")) is None
    assert [r[2] for r in _refusals(c)] == ["invalid_request"]  # the refusal is still recorded
    answer = intake.accept_booking_request(c, _request(c, request_id="web-1"), scope="coach")
    assert answer.created and answer.booking_id == booking_id_for("coach/web-1")
