"""Session lifecycle and money after booking, driven in-process through the task outbox.

Money runs against a real localstripe on loopback through the real StripeGateway; the
booking saga (tests/support.drain) books the package first. Queue behaviour itself (a real
worker, redelivery) is covered in test_worker_*.py; here a redelivery is the same call again.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta

import pytest
import stripe
from sqlalchemy import select

from models import Activity, Booking, LedgerEntry, Meeting, OutboxEmail, Payment, Reminder, Session, TaskOutbox
from services import lifecycle
from services.booking import submit_booking
from services.booking.views import booking_object
from services.errors import InvalidInput, NotFound, OperationFailed
from services.tokens import make_token
from tests.peers.localstripe_server import reset, running_localstripe
from tests.support import (apply_config, booking_request, daily_slots, drain, inline_cli, iso, local,
                           override_tasks, package_config)

pytestmark = pytest.mark.integration

STRIPE_KEY = "sk_test_sessionpack_lifecycle"
ADMIN = {"admin": True}


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as base_url:
        yield base_url


@pytest.fixture
def lc(container):
    """The container with the lifecycle's internal tasks known to drain()."""
    return container


@pytest.fixture
def paid(lc, stripe_base):
    """The container with its payments pointed at a fresh localstripe."""
    reset(stripe_base)
    lc.settings = lc.settings.replace(stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_base)
    return lc


@pytest.fixture
def raw(stripe_base):
    """A plain Stripe client on the same peer, to see what reached Stripe."""
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stripe_base}).v1


def book(c, clock, n=3, price=None, *, days=2, hhmm="10:00", **config) -> dict:
    """Apply a package config and book it through the saga; the booking object."""
    apply_config(c, package_config(n, price=price, **config))
    request = booking_request(daily_slots(clock() + timedelta(days=days), n, hhmm),
                              payment_method="pm_card_visa" if price else None)
    booking_id = submit_booking(c, request)
    drain(c)
    shown = show(c, booking_id)
    assert shown["status"] == "confirmed", shown["failure"]
    return shown


def later(clock, days: int, hhmm: str = "11:00") -> str:
    """A start `days` after today at a wall time inside the page's hours (New York)."""
    return iso(local((clock().date() + timedelta(days=days)).isoformat(), hhmm))


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def show(c, booking_id: str) -> dict:
    with c.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), c.settings)


def token(c, session_id: str) -> str:
    return make_token(c.settings.secret_key, session_id)


def cancel(c, sessions, *, key: str | None = None, **kwargs) -> dict:
    """Cancel (as the customer with the right tokens unless told otherwise) and run the tasks.
    Each call is a new change unless `key` names one (a redelivery)."""
    ids = [s["id"] for s in sessions]
    if "admin" not in kwargs and "tokens" not in kwargs:
        kwargs["tokens"] = [token(c, sid) for sid in ids]
    result = lifecycle.cancel_sessions(c, ids, change_key=key or uuid.uuid4().hex, **kwargs)
    drain(c)
    return result


def reschedule(c, session, to, *, key: str | None = None, **kwargs) -> dict:
    if "admin" not in kwargs and "token" not in kwargs:
        kwargs["token"] = token(c, session["id"])
    result = lifecycle.reschedule_session(c, session["id"], to, change_key=key or uuid.uuid4().hex, **kwargs)
    drain(c)
    return result


def ledger(c, booking_id: str) -> list[tuple[str, int, str]]:
    with c.session_factory() as db:
        rows = db.execute(select(LedgerEntry).where(LedgerEntry.booking_id == booking_id).order_by(LedgerEntry.id))
        return [(e.kind, e.amount_cents, e.status) for e in rows.scalars()]


def intent_of(c, booking_id: str) -> str:
    with c.session_factory() as db:
        return db.execute(select(Payment.intent_id).where(Payment.booking_id == booking_id)).scalar_one()


def stripe_refunds(raw, intent_id: str) -> list[int]:
    return sorted(r.amount for r in raw.refunds.list(params={"payment_intent": intent_id}).auto_paging_iter())


def emails(c, booking_id: str) -> list[str]:
    with c.session_factory() as db:
        return [e.kind for e in db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == booking_id)
                                           .order_by(OutboxEmail.id)).scalars()]


def actions(shown: dict) -> list[str]:
    return [a["action"] for a in reversed(shown["activity"])]


def refused(fn, *args, **kwargs) -> OperationFailed | InvalidInput:
    with pytest.raises((OperationFailed, InvalidInput)) as err:
        fn(*args, **kwargs)
    return err.value


# -- the worked examples --------------------------------------------------------------------------


def test_cancel_one_then_the_rest_refunds_25_then_75_in_total(paid, db_backend, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    first, second, third = shown["sessions"]
    assert [s["relative_cost"] for s in shown["sessions"]] == ["50.00"] * 3 and shown["paid"] == "150.00"

    result = cancel(paid, [first], reason="travelling")
    assert result["refund_cents"] == 2500
    after = show(paid, shown["id"])
    intent = intent_of(paid, shown["id"])
    assert stripe_refunds(raw, intent) == [2500]
    assert after["refunded"] == "25.00" and after["status"] == "confirmed"
    assert [s["status"] for s in after["sessions"]] == ["cancelled", "confirmed", "confirmed"]
    assert after["sessions"][0]["conferencing"] is None  # the meeting is gone, the others stay
    assert after["sessions"][1]["conferencing"] is not None
    entry = next(a for a in after["activity"] if a["action"] == "session.cancelled")
    assert entry["actor"] == "customer" and entry["session_id"] == first["id"]
    assert entry["details"]["refund"] == "25.00" and entry["details"]["reason"] == "travelling"
    assert {"refund.requested", "refund.succeeded", "meeting.deleted"} <= set(actions(after))
    with paid.session_factory() as db:
        dropped = {r.session_id for r in db.execute(select(Reminder).where(Reminder.status == "dropped")).scalars()}
        assert dropped == {first["id"]}
        assert db.get(Session, first["id"]).sequence == 1 and db.get(Session, second["id"]).sequence == 0

    # The other two together: one notice for both, $50 more, $75 in total, booking cancelled.
    cancel(paid, [second, third], key="chg-2")
    final = show(paid, shown["id"])
    assert stripe_refunds(raw, intent) == [2500, 5000]
    assert final["refunded"] == "75.00" and final["status"] == "cancelled"
    assert emails(paid, shown["id"])[2:] == ["sessions_cancelled_customer", "sessions_cancelled_owner"] * 2
    assert lifecycle.reconcile(paid, shown["id"]) == {"ok": True, "bookings": 1, "differences": []}


def test_reschedule_with_a_10_percent_fee_charged_off_session(paid, db_backend, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    session = shown["sessions"][1]
    with paid.session_factory() as db:
        uid = db.get(Session, session["id"]).uid
    new_start = later(clock, 10)

    result = reschedule(paid, session, new_start)
    assert result["fee_cents"] == 500 and result["start"] == new_start
    after = show(paid, shown["id"])
    moved = after["sessions"][1]
    assert (moved["id"], moved["number"], moved["start"]) == (session["id"], 2, new_start)
    assert moved["end"] == iso(when(new_start) + timedelta(hours=1))
    assert after["fees"] == "5.00" and after["paid"] == "150.00" and after["refunded"] == "0.00"
    with paid.session_factory() as db:
        s = db.get(Session, session["id"])
        assert s.uid == uid and s.sequence == 1
        fee = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "fee")).scalar_one()
        reminders = db.execute(select(Reminder).where(Reminder.session_id == s.id)).scalars().all()
        assert {r.due_at for r in reminders} == {s.start_at - timedelta(minutes=r.before_minutes) for r in reminders}
    pi = raw.payment_intents.retrieve(fee.stripe_object_id)
    assert pi.amount == 500 and pi.status == "succeeded" and pi.id != intent_of(paid, shown["id"])
    assert emails(paid, shown["id"])[-2:] == ["session_rescheduled_customer", "session_rescheduled_owner"]
    assert {"fee.charged", "session.rescheduled", "meeting.moved"} <= set(actions(after))
    entry = next(a for a in after["activity"] if a["action"] == "session.rescheduled")
    assert entry["details"]["fee"] == "5.00" and entry["details"]["from"] == session["start"]
    assert lifecycle.reconcile(paid)["ok"] is True

    # Money paid as a fee is refundable too: a refund beyond the package's intent takes the rest
    # from the fee's intent.
    lifecycle.refund_booking(paid, shown["id"], "152.00", change_key="r-all")
    drain(paid)
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [15000]
    assert stripe_refunds(raw, fee.stripe_object_id) == [200]
    assert show(paid, shown["id"])["refunded"] == "152.00"
    assert lifecycle.reconcile(paid)["ok"] is True


def test_a_declined_fee_changes_nothing(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    with paid.uow() as uow:  # the saved card now declines every charge
        uow.db.execute(select(Payment)).scalar_one().payment_method = "pm_card_chargeCustomerFail"
        uow.commit()
    session = shown["sessions"][0]
    err = refused(reschedule, paid, session, later(clock, 9), key="mv")
    assert err.code == "fee_declined" and "$5.00" in err.message
    after = show(paid, shown["id"])
    assert after["sessions"] == shown["sessions"] and after["fees"] == "0.00"
    assert ledger(paid, shown["id"]) == [("capture", 15000, "succeeded"), ("fee", 500, "failed")]
    assert "reschedule.refused" in actions(after) and "session.rescheduled" not in actions(after)
    # Redelivered: the same answer, and no second attempt at the card.
    assert refused(reschedule, paid, session, later(clock, 9), key="mv").code == "fee_declined"
    assert len(list(raw.payment_intents.list(params={"limit": 100}).auto_paging_iter())) == 2


def test_a_slot_taken_after_the_fee_was_charged_gives_the_fee_back(paid, db_backend, clock, raw):
    shown = book(paid, clock, 2, "100.00")
    target = later(clock, 9)
    real = paid.payments

    class TakenMeanwhile:
        """The real gateway, but someone else books the target slot while the fee is charged."""

        def __getattr__(self, name):
            return getattr(real, name)

        def charge_off_session(self, **kwargs):
            movement = real.charge_off_session(**kwargs)
            submit_booking(paid, booking_request([target, later(clock, 20)], payment_method="pm_card_visa",
                                                          email="other@example.org"))
            return movement

    paid.payments = TakenMeanwhile()
    err = refused(reschedule, paid, shown["sessions"][0], target)
    paid.payments = real
    drain(paid)
    assert err.code == "slot_unavailable"
    assert show(paid, shown["id"])["sessions"][0]["start"] == shown["sessions"][0]["start"]
    assert ledger(paid, shown["id"])[1:] == [("fee", 500, "succeeded"), ("refund", 500, "succeeded")]
    assert lifecycle.reconcile(paid, shown["id"])["ok"] is True
    # The customer was charged and refunded: one email says why, and that the session keeps its time.
    assert emails(paid, shown["id"]).count("reschedule_failed_customer") == 1
    with paid.session_factory() as db:
        notice = db.execute(select(OutboxEmail).where(OutboxEmail.kind == "reschedule_failed_customer")).scalar_one()
    assert "someone else booked that time" in notice.text_body and "5.00" in notice.text_body


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_postgres_refuses_an_overlap_the_check_missed_and_the_fee_comes_back(paid, db_backend, clock, monkeypatch):
    shown = book(paid, clock, 2, "100.00")
    first, second = shown["sessions"]
    # As if another transaction took the time between our check and our write.
    monkeypatch.setattr("services.lifecycle.reschedule.owner_busy", lambda *args, **kwargs: [])
    err = refused(reschedule, paid, first, second["start"])
    drain(paid)
    assert err.code == "slot_unavailable" and second["start"] in err.message
    assert show(paid, shown["id"])["sessions"] == shown["sessions"]
    assert ledger(paid, shown["id"])[1:] == [("fee", 500, "succeeded"), ("refund", 500, "succeeded")]


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
def test_a_move_refused_without_a_fee_never_mentions_one(paid, db_backend, clock, monkeypatch):
    """The slot is taken between the check and the write. The administrator's refused move (no fee)
    tells the customer nothing (they never asked); the customer's own refused move of a free
    session tells them why, without a word about a fee."""
    shown = book(paid, clock, 2, "100.00")
    first, second = shown["sessions"]
    monkeypatch.setattr("services.lifecycle.reschedule.owner_busy", lambda *args, **kwargs: [])
    assert refused(reschedule, paid, first, second["start"], admin=True).code == "slot_unavailable"
    assert "reschedule_failed_customer" not in emails(paid, shown["id"])
    assert ledger(paid, shown["id"])[1:] == []

    free = book(paid, clock, 2, days=5)
    a, b = free["sessions"]
    assert refused(reschedule, paid, a, b["start"]).code == "slot_unavailable"
    assert emails(paid, free["id"]).count("reschedule_failed_customer") == 1
    with paid.session_factory() as db:
        notice = db.execute(select(OutboxEmail).where(OutboxEmail.kind == "reschedule_failed_customer",
                                                      OutboxEmail.booking_id == free["id"])).scalar_one()
    assert "someone else booked that time just before we could move your session" in notice.text_body
    assert not re.search(r"\bfees?\b", notice.text_body + notice.html_body, re.I)


# -- policy windows and the administrator ----------------------------------------------------------


@pytest.mark.parametrize("action", ["cancel", "reschedule"])
@pytest.mark.parametrize("offset, ok", [(timedelta(0), True), (timedelta(seconds=-1), True), (timedelta(seconds=1), False)])
def test_windows_at_the_edge_of_min_notice(lc, db_backend, clock, action, offset, ok):
    shown = book(lc, clock, 2)
    session = shown["sessions"][0]
    start = when(session["start"])
    clock.now = start - timedelta(hours=24) + offset  # the 24 h deadline, +- a second
    run = (lambda: cancel(lc, [session])) if action == "cancel" else (
        lambda: reschedule(lc, session, iso(start + timedelta(days=5))))
    if ok:
        run()
        assert show(lc, shown["id"])["sessions"][0] != session
    else:
        err = refused(run)
        assert err.code == f"too_late_to_{action}" and iso(start - timedelta(hours=24)) in err.message
        assert show(lc, shown["id"])["sessions"] == shown["sessions"]


def test_policy_allowed_false_binds_the_customer_but_not_the_admin(lc, db_backend, clock):
    shown = book(lc, clock, 3, cancel={"allowed": False, "min_notice_hours": 0, "refund_percent": 50},
                 reschedule={"allowed": False, "min_notice_hours": 0, "fee_percent": 10})
    first, second, _ = shown["sessions"]
    assert refused(cancel, lc, [first]).code == "policy_forbids"
    assert refused(reschedule, lc, second, later(clock, 9)).code == "policy_forbids"
    cancel(lc, [first], **ADMIN, key="a-1")
    reschedule(lc, second, later(clock, 9), **ADMIN, key="a-2")
    after = show(lc, shown["id"])
    assert after["sessions"][0]["status"] == "cancelled" and after["sessions"][1]["start"] == later(clock, 9)
    assert {a["actor"] for a in after["activity"] if a["action"] in ("session.cancelled", "session.rescheduled")} == {"admin"}


def test_admin_overrides_windows_refunds_per_policy_and_charges_no_fee(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    clock.advance(days=2, hours=4)  # the first session has started: past every window
    first, second, third = shown["sessions"]
    assert refused(cancel, paid, [second]).code == "too_late_to_cancel"
    cancel(paid, [second], **ADMIN, reason="owner ill")
    reschedule(paid, third, later(clock, 6), **ADMIN)
    cancel(paid, [first], **ADMIN, refund=False, key="chg-2")
    after = show(paid, shown["id"])
    assert after["refunded"] == "25.00" and after["fees"] == "0.00"
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [2500]
    assert [k for k, _, _ in ledger(paid, shown["id"])] == ["capture", "refund"]


# -- refusals that move nothing --------------------------------------------------------------------


def test_cancelling_a_cancelled_session_is_a_clear_error_and_moves_no_money(paid, clock):
    shown = book(paid, clock, 3, "150.00")
    first, second, _ = shown["sessions"]
    cancel(paid, [first])
    before = ledger(paid, shown["id"])
    for sessions in ([first], [second, first]):
        err = refused(cancel, paid, sessions, key=f"again-{len(sessions)}")
        assert err.code == "session_already_cancelled" and first["id"] in err.message
        err = refused(cancel, paid, sessions, key=f"admin-{len(sessions)}", **ADMIN)
        assert err.code == "session_already_cancelled"
    assert ledger(paid, shown["id"]) == before
    assert show(paid, shown["id"])["sessions"][1]["status"] == "confirmed"


def test_several_sessions_at_once_get_one_notice(lc, db_backend, clock):
    shown = book(lc, clock, 5)
    cancel(lc, shown["sessions"][1:4])
    kinds = emails(lc, shown["id"])
    assert kinds.count("sessions_cancelled_customer") == 1 and kinds.count("sessions_cancelled_owner") == 1
    with lc.session_factory() as db:
        notice = db.execute(select(OutboxEmail).where(OutboxEmail.kind == "sessions_cancelled_customer")).scalar_one()
        assert notice.attachments[0]["content"].count("BEGIN:VEVENT") == 3 and notice.status == "sent"
    assert [s["status"] for s in show(lc, shown["id"])["sessions"]] == ["confirmed"] + ["cancelled"] * 3 + ["confirmed"]


def test_manual_refund_up_to_refundable_and_over_it_refused(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    intent = intent_of(paid, shown["id"])
    lifecycle.refund_booking(paid, shown["id"], "100.00", reason="goodwill", change_key="r-1")
    drain(paid)
    before = ledger(paid, shown["id"])
    err = refused(lifecycle.refund_booking, paid, shown["id"], "50.01", change_key="r-2")
    assert err.code == "refund_exceeds_refundable" and "$50.00" in err.message
    assert ledger(paid, shown["id"]) == before and stripe_refunds(raw, intent) == [10000]
    for bad in ("0", "-1", "abc", "1.005"):
        err = refused(lifecycle.refund_booking, paid, shown["id"], bad, change_key=f"bad-{bad}")
        assert isinstance(err, InvalidInput) and err.code == "invalid_amount"
    assert refused(lifecycle.refund_booking, paid, shown["id"], "1.00", admin=False, change_key="c").code == "admin_required"
    with pytest.raises(NotFound):
        lifecycle.refund_booking(paid, "bk_nope", "1.00", change_key="n")
    lifecycle.refund_booking(paid, shown["id"], "50.00", change_key="r-3")
    drain(paid)
    assert stripe_refunds(raw, intent) == [5000, 10000]
    after = show(paid, shown["id"])
    assert after["refunded"] == "150.00"
    assert emails(paid, shown["id"]).count("refund_issued_customer") == 2
    # A cancellation now refunds what is left to refund: nothing.
    assert cancel(paid, [shown["sessions"][0]])["refund_cents"] == 0
    assert refused(lifecycle.refund_booking, paid, shown["id"], "0.01", change_key="r-4").code == "refund_exceeds_refundable"


def test_tokens_forged_swapped_or_replayed_are_refused(lc, clock, caplog):
    shown = book(lc, clock, 3)
    first, second, _ = shown["sessions"]
    good = token(lc, first["id"])
    forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_key = make_token("another-secret-key-0123456789abcdef", first["id"])
    for tokens in ([forged], [other_key], [token(lc, second["id"])], [f"{first['id']}."]):
        err = refused(cancel, lc, [first], tokens=tokens)
        assert err.code == "invalid_token" and tokens[0] not in err.message
    # Swapped order of two genuine tokens.
    assert refused(cancel, lc, [first, second], tokens=[token(lc, second["id"]), good]).code == "invalid_token"
    assert refused(cancel, lc, [first, second], tokens=[good]).code == "token_count_mismatch"
    assert refused(lifecycle.cancel_sessions, lc, [first["id"]], change_key="x").code == "authorization_required"
    assert refused(lifecycle.cancel_sessions, lc, [first["id"]], tokens=[good], admin=True,
                   change_key="y").code == "conflicting_authorization"
    assert refused(reschedule, lc, second, later(clock, 9), token=good).code == "invalid_token"
    assert show(lc, shown["id"])["sessions"] == shown["sessions"]

    cancel(lc, [first])
    # Replay of the genuine token after the cancellation.
    assert refused(cancel, lc, [first], key="replay").code == "session_already_cancelled"
    assert refused(reschedule, lc, first, later(clock, 9), token=good).code == "session_already_cancelled"
    with lc.session_factory() as db:
        stored = json.dumps([a.details for a in db.execute(select(Activity)).scalars()])
    assert good not in stored and forged not in stored
    assert good not in caplog.text and forged not in caplog.text


def test_unknown_sessions_and_sessions_of_two_bookings(lc, clock):
    a = book(lc, clock, 2)
    b = book(lc, clock, 2, days=6)
    with pytest.raises(NotFound) as err:
        lifecycle.cancel_sessions(lc, ["ss_missing"], admin=True, change_key="u")
    assert err.value.code == "unknown_session"
    err = refused(lifecycle.cancel_sessions, lc, [a["sessions"][0]["id"], b["sessions"][0]["id"]], admin=True, change_key="s")
    assert err.code == "sessions_span_bookings"
    assert refused(lifecycle.cancel_sessions, lc, [a["sessions"][0]["id"]] * 2, admin=True, change_key="d").code == "duplicate_session"


def test_reschedule_checks_the_new_time_like_at_booking(lc, db_backend, clock):
    shown = book(lc, clock, 3, buffer_after_minutes=30)
    first, second, _ = shown["sessions"]
    start = when(first["start"])
    cases = {
        "slot_unavailable": second["start"],
        "slot_in_past": iso(clock() - timedelta(hours=1)),
        "slot_too_soon": iso(clock() + timedelta(minutes=30)),
        "slot_outside_availability": iso(start.replace(hour=4)),
        "slot_off_grid": iso(start + timedelta(minutes=10)),
        "invalid_time": "tomorrow at ten",
        "same_time": first["start"],
    }
    for code, to in cases.items():  # the customer, with their token
        assert refused(reschedule, lc, first, to, key=f"k-{code}").code == code, code
    # Overlapping its own old time is fine: the session does not block itself.
    reschedule(lc, first, iso(start + timedelta(minutes=30)), **ADMIN)
    assert show(lc, shown["id"])["sessions"][0]["start"] == iso(start + timedelta(minutes=30))


def test_the_admin_moves_a_session_any_time_but_not_into_the_past_or_onto_a_booking(lc, db_backend, clock):
    """The contract: policies do not bind the admin (issue 19: "the admin may pick any time")."""
    shown = book(lc, clock, 3, buffer_after_minutes=30)
    first, second, _ = shown["sessions"]
    start = when(first["start"])
    for n, to in enumerate((iso(start.replace(hour=4)),  # outside the opening hours
                            iso(clock() + timedelta(minutes=30)),  # inside the minimum notice
                            iso(start + timedelta(minutes=10)))):  # off the 30-minute grid
        reschedule(lc, first, to, key=f"any-{n}", **ADMIN)
        assert show(lc, shown["id"])["sessions"][0]["start"] == to
    refusals = {"slot_in_past": iso(clock() - timedelta(hours=1)),
                "slot_unavailable": second["start"],
                # the second session's 30-minute buffer after it is the owner's busy time too
                "slot_unavailable ": iso(when(second["start"]) + timedelta(minutes=70))}
    for code, to in refusals.items():
        assert refused(reschedule, lc, first, to, key=f"no-{to}", **ADMIN).code == code.strip(), code


# -- idempotency ---------------------------------------------------------------------------------


def test_a_redelivered_change_changes_nothing(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    first, second, _ = shown["sessions"]
    cancel(paid, [first], key="task-1")
    assert cancel(paid, [first], key="task-1")["replayed"] is True
    to = later(clock, 9)
    reschedule(paid, second, to, key="task-2")
    assert reschedule(paid, second, to, key="task-2")["replayed"] is True
    lifecycle.refund_booking(paid, shown["id"], "10.00", change_key="task-3")
    assert lifecycle.refund_booking(paid, shown["id"], "10.00", change_key="task-3")["replayed"] is True
    drain(paid)
    assert sorted(ledger(paid, shown["id"])) == sorted([("capture", 15000, "succeeded"), ("refund", 2500, "succeeded"),
                                                        ("fee", 500, "succeeded"), ("refund", 1000, "succeeded")])
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [1000, 2500]
    with paid.session_factory() as db:
        assert db.get(Session, second["id"]).sequence == 1


def test_a_refund_task_run_twice_or_killed_after_stripe_refunds_once(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    real = paid.payments

    class WorkerKilled(BaseException):
        """Like SIGKILL: nothing after it runs, no handler catches it."""

    class KilledAfterStripe:
        """The worker dies right after Stripe made the refund, before the ledger knows."""

        def __getattr__(self, name):
            return getattr(real, name)

        def refund(self, *args, **kwargs):
            real.refund(*args, **kwargs)
            raise WorkerKilled()

    paid.payments = KilledAfterStripe()
    with pytest.raises(WorkerKilled):
        cancel(paid, [shown["sessions"][0]])
    paid.payments = real
    assert ledger(paid, shown["id"])[-1] == ("refund", 2500, "pending")
    # Meanwhile reconciliation sees the refund Stripe has and the ledger does not (yet).
    report = lifecycle.reconcile(paid)
    assert not report["ok"] and report["differences"][0]["kind"] == "refund_not_in_ledger"
    assert "pending" in report["differences"][0]["message"]

    with paid.session_factory() as db:
        key, = db.execute(select(LedgerEntry.idempotency_key).where(LedgerEntry.kind == "refund")).one()
    parts = [{"key": key, "intent_id": intent_of(paid, shown["id"])}]
    for _ in range(2):  # the redelivered task, then once more
        lifecycle.send_refunds(paid, shown["id"], parts)
    drain(paid)
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [2500]
    assert ledger(paid, shown["id"])[-1] == ("refund", 2500, "succeeded")
    assert show(paid, shown["id"])["refunded"] == "25.00"
    assert lifecycle.reconcile(paid)["ok"] is True


def test_send_refunds_reads_who_is_told_from_the_change_not_the_message(paid, db_backend, clock, raw):
    # Internal tasks trust no argument but ids (issue 16): a forged send_refunds naming a
    # cancellation's refund with notify/change_key/reason of its own emails nobody; a manual
    # refund's customer is told once, because the refund's own record says so.
    from models import Activity

    shown = book(paid, clock, 3, "150.00")
    cancel(paid, [shown["sessions"][0]], key="chg-cancel-1")
    with paid.session_factory() as db:
        key, = db.execute(select(LedgerEntry.idempotency_key).where(LedgerEntry.kind == "refund")).one()
    before = emails(paid, shown["id"])
    lifecycle.send_refunds(paid, shown["id"], [{"key": key, "intent_id": "pi_forged"}], notify=True,
                           change_key="chg-cancel-1", reason="forged")
    drain(paid)
    assert emails(paid, shown["id"]) == before and "refund_issued_customer" not in before

    lifecycle.refund_booking(paid, shown["id"], "10.00", reason="goodwill", change_key="rf-desk-1")
    with paid.session_factory() as db:
        outbox = db.execute(select(TaskOutbox.kwargs).where(TaskOutbox.task_name == lifecycle.SEND_REFUNDS)
                            .order_by(TaskOutbox.id.desc())).scalars().first()
        requested = db.execute(select(Activity.details).where(Activity.action == "refund.requested")
                               .order_by(Activity.id.desc())).scalars().first()
    assert set(outbox) == {"booking_id", "refunds"}  # ids only: nothing else to trust
    assert requested["change"] == "rf-desk-1" and requested["notify_customer"] is True
    drain(paid)
    # The message again, as if redelivered with notify false: told once all the same.
    lifecycle.send_refunds(paid, shown["id"], outbox["refunds"], notify=False)
    assert emails(paid, shown["id"]).count("refund_issued_customer") == 1
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [1000, 2500]


def test_the_sweep_sends_a_refund_whose_task_was_lost(paid, clock, raw):
    from datetime import timedelta

    from services.lifecycle.ledger import resend_stale_refunds

    shown = book(paid, clock, 3, "150.00")
    lost = []
    override_tasks(paid, {lifecycle.SEND_REFUNDS: lambda c, **kw: lost.append(kw)})
    cancel(paid, [shown["sessions"][0]])
    assert lost and ledger(paid, shown["id"])[-1] == ("refund", 2500, "pending")
    assert resend_stale_refunds(paid, timedelta(minutes=10)) == 0  # too fresh to call lost
    clock.advance(minutes=11)
    assert resend_stale_refunds(paid, timedelta(minutes=10)) == 1
    assert resend_stale_refunds(paid, timedelta(minutes=10)) == 0
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [2500]
    assert show(paid, shown["id"])["refunded"] == "25.00"


# -- a reschedule that charged its fee but never moved ------------------------------------------


class WorkerKilled(BaseException):
    """Like SIGKILL: nothing after it runs, no handler catches it."""


def all_refunds(raw) -> list[int]:
    return sorted(r.amount for r in raw.refunds.list(params={"limit": 100}).auto_paging_iter())


def outcome_of(c, booking_id: str, change_key: str):
    with c.session_factory() as db:
        return lifecycle.change_outcome(db, booking_id, change_key)


def test_a_move_failing_until_the_task_gives_up_refunds_the_fee_once(paid, db_backend, clock, raw, stripe_base,
                                                                       monkeypatch):
    import tasks.base
    import tasks.lifecycle
    from sqlalchemy.exc import OperationalError

    from tests.reliability.invariants import check_invariants
    from core.wiring import set_container

    shown = book(paid, clock, 3, "150.00")
    session, to = shown["sessions"][1], later(clock, 9)
    tries = []

    def database_down(*args, **kwargs):
        tries.append(kwargs["change_key"])
        raise OperationalError("UPDATE sessions ...", {}, ConnectionRefusedError("the database is down"))

    monkeypatch.setattr("services.lifecycle.reschedule._move", database_down)
    monkeypatch.setattr(tasks.base, "backoff", lambda *args, **kwargs: 0)
    kwargs = {"session_id": session["id"], "to": to, "token": token(paid, session["id"])}
    set_container(paid)
    try:
        result = tasks.lifecycle.reschedule_session.apply(kwargs=kwargs, task_id="mv-1").get()
    finally:
        set_container(None)
    assert tries == ["mv-1"] * (tasks.base.MAX_RETRIES + 1)  # the fee was charged once, on the first try
    assert result["error"]["code"] == "reschedule_failed" and session["id"] in result["error"]["message"]
    drain(paid)

    after = show(paid, shown["id"])
    assert after["sessions"] == shown["sessions"]
    assert ledger(paid, shown["id"])[1:] == [("fee", 500, "succeeded"), ("refund", 500, "succeeded")]
    assert all_refunds(raw) == [500] and after["fees"] == "5.00" and after["refunded"] == "5.00"
    assert outcome_of(paid, shown["id"], "mv-1").error.code == "reschedule_failed"
    assert emails(paid, shown["id"]).count("reschedule_failed_customer") == 1
    with paid.session_factory() as db:
        notice = db.execute(select(OutboxEmail).where(OutboxEmail.kind == "reschedule_failed_customer")).scalar_one()
    assert "$5.00" in notice.text_body and notice.status == "sent"

    # The same change again, the database back: refused the same way, nothing charged or refunded.
    monkeypatch.undo()
    assert refused(reschedule, paid, session, to, key="mv-1").code == "reschedule_failed"
    assert ledger(paid, shown["id"])[1:] == [("fee", 500, "succeeded"), ("refund", 500, "succeeded")]
    assert all_refunds(raw) == [500] and emails(paid, shown["id"]).count("reschedule_failed_customer") == 1
    assert show(paid, shown["id"])["sessions"] == shown["sessions"]
    assert check_invariants(paid, stripe=stripe_base) == []


def test_the_sweep_refunds_fees_of_reschedules_whose_task_was_lost(paid, db_backend, clock, raw, stripe_base):
    from services.lifecycle import refund_orphaned_fees
    from tests.reliability.invariants import check_invariants

    shown = book(paid, clock, 4, "200.00")
    first, second, third, fourth = shown["sessions"]
    real = paid.payments

    class Killed:
        """The real gateway; the worker dies before or after Stripe charges the fee."""

        def __init__(self, when):
            self.when = when

        def __getattr__(self, name):
            return getattr(real, name)

        def charge_off_session(self, **kwargs):
            if self.when == "before":
                raise WorkerKilled()
            real.charge_off_session(**kwargs)
            raise WorkerKilled()

    def lost(session, key, when=None):
        paid.payments = Killed(when) if when else real
        try:
            with pytest.raises(WorkerKilled):
                reschedule(paid, session, later(clock, 9 + session["number"]), key=key)
        finally:
            paid.payments = real

    def killed(*args, **kwargs):
        raise WorkerKilled()

    reschedule(paid, first, later(clock, 9), key="moved")
    with pytest.MonkeyPatch.context() as mp:  # charged, then killed before the move
        mp.setattr("services.lifecycle.reschedule._move", killed)
        lost(second, "lost")
    lost(third, "lost-after-charge", "after")
    lost(fourth, "lost-before-charge", "before")
    assert sorted(ledger(paid, shown["id"])[1:]) == [("fee", 500, "pending")] * 2 + [("fee", 500, "succeeded")] * 2

    grace, window = timedelta(hours=1), timedelta(days=7)
    assert refund_orphaned_fees(paid, grace, window)["found"] == 0  # inside the grace period
    clock.advance(hours=1, minutes=1)
    assert refund_orphaned_fees(paid, grace, window) == {"found": 3, "abandoned": 3, "failed": 0}
    drain(paid)
    assert refund_orphaned_fees(paid, grace, window)["found"] == 0  # nothing twice

    assert all_refunds(raw) == [500, 500]
    after = show(paid, shown["id"])
    assert after["fees"] == "15.00" and after["refunded"] == "10.00"
    assert after["sessions"][0]["start"] == later(clock, 9) and after["sessions"][1:] == shown["sessions"][1:]
    assert outcome_of(paid, shown["id"], "moved").state == "applied"
    for key in ("lost", "lost-after-charge", "lost-before-charge"):
        assert outcome_of(paid, shown["id"], key).error.code == "reschedule_failed"
    with paid.session_factory() as db:
        fees = {e.idempotency_key.rsplit("-fee-", 1)[1]: e.status for e in db.execute(
            select(LedgerEntry).where(LedgerEntry.kind == "fee")).scalars()}
    assert fees == {"moved": "succeeded", "lost": "succeeded", "lost-after-charge": "succeeded",
                    "lost-before-charge": "failed"}
    assert emails(paid, shown["id"]).count("reschedule_failed_customer") == 3
    # A late redelivery of a lost change is refused; it neither moves the session nor charges again.
    assert refused(reschedule, paid, second, later(clock, 11), key="lost").code == "reschedule_failed"
    assert ledger(paid, shown["id"]).count(("refund", 500, "succeeded")) == 2
    assert check_invariants(paid, stripe=stripe_base) == []
    clock.advance(days=8)
    assert refund_orphaned_fees(paid, grace, window)["found"] == 0  # out of the window


def test_beat_sweeps_orphaned_fees_well_within_their_grace_period():
    import tasks  # noqa: F401  (registers the tasks)
    from worker.app import app
    from core.settings import Settings

    entry = app.conf.beat_schedule["refund-orphaned-fees"]
    assert entry["task"] == "sessionpack.refund_orphaned_fees" and entry["task"] in app.tasks
    assert entry["schedule"] * 4 <= Settings.model_fields["orphaned_fee_grace_seconds"].default


def test_reconcile_reports_a_refund_made_directly_in_stripe(paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    assert lifecycle.reconcile(paid) == {"ok": True, "bookings": 1, "differences": []}
    intent = intent_of(paid, shown["id"])
    outside = raw.refunds.create(params={"payment_intent": intent, "amount": 1234})
    report = lifecycle.reconcile(paid, shown["id"])
    assert report["ok"] is False
    assert report["differences"] == [{
        "booking_id": shown["id"], "kind": "refund_not_in_ledger", "stripe_object": outside.id, "ledger": None,
        "stripe": "12.34", "currency": "USD", "message": report["differences"][0]["message"]}]
    assert "outside sessionpack" in report["differences"][0]["message"]
    with pytest.raises(NotFound):
        lifecycle.reconcile(paid, "bk_nope")


# -- the command line ----------------------------------------------------------------------------


PUBLIC_TASKS = {"sessionpack.cancel_sessions", "sessionpack.reschedule_session", "sessionpack.refund_booking"}


@pytest.fixture
def cli(paid):
    with inline_cli(paid) as run:
        yield run


def test_cli_refuses_early_with_the_contract_exit_codes(cli, paid, clock):
    shown = book(paid, clock, 3, "150.00")
    sid = shown["sessions"][0]["id"]
    code, out = cli("cancel", sid)
    assert (code, out["error"]["code"]) == (2, "authorization_required") and "--token" in out["error"]["message"]
    assert cli("cancel", sid, "--admin", "--token", "x")[1]["error"]["code"] == "conflicting_authorization"
    code, out = cli("cancel", sid, "--token", "ss_x.forged")
    assert (code, out["error"]["code"]) == (1, "invalid_token")
    assert cli("reschedule", sid, "--to", "2026-12-09 10:00", "--admin")[1]["error"]["code"] == "invalid_time"
    assert cli("refund", shown["id"], "--amount", "150.01", "--admin")[0] == 1
    assert cli("refund", shown["id"], "--amount", "ten", "--admin")[0] == 2
    assert cli("refund", shown["id"], "--amount", "1.00")[1]["error"]["code"] == "admin_required"
    clock.advance(days=1, hours=12)
    code, out = cli("cancel", sid, "--token", token(paid, sid))
    assert (code, out["error"]["code"]) == (1, "too_late_to_cancel")
    assert not set(paid.celery_app.sent) & PUBLIC_TASKS  # nothing refused was enqueued


def test_cli_cancel_reschedule_refund_and_reconcile(cli, paid, clock, raw):
    shown = book(paid, clock, 3, "150.00")
    first, second, third = (s["id"] for s in shown["sessions"])
    code, out = cli("cancel", first, "--token", token(paid, first), "--reason", "sick")
    assert code == 0 and out["status"] == "queued" and out["refund"] == "25.00" and out["booking_id"] == shown["id"]
    code, out = cli("cancel", second, "--admin", "--no-refund", "--wait", "5")
    assert code == 0 and out["refunded"] == "25.00" and out["sessions"][1]["status"] == "cancelled"
    to = later(clock, 9)
    code, out = cli("reschedule", third, "--to", to, "--token", token(paid, third), "--wait", "5")
    assert code == 0 and out["fees"] == "5.00" and out["sessions"][2]["start"] == to
    code, out = cli("refund", shown["id"], "--amount", "12.50", "--admin", "--reason", "sorry", "--wait", "5")
    assert code == 0 and out["refunded"] == "37.50"
    assert cli("reconcile") == (0, {"ok": True, "bookings": 1, "differences": []})
    raw.refunds.create(params={"payment_intent": intent_of(paid, shown["id"]), "amount": 100})
    code, out = cli("reconcile", "--booking", shown["id"])
    assert code == 1 and out["differences"][0]["kind"] == "refund_not_in_ledger"


def test_cli_wait_reports_a_refusal_decided_by_the_task(cli, paid, clock):
    shown = book(paid, clock, 2, "100.00")
    with paid.uow() as uow:
        uow.db.execute(select(Payment)).scalar_one().payment_method = "pm_card_chargeCustomerFail"
        uow.commit()
    sid = shown["sessions"][0]["id"]
    code, out = cli("reschedule", sid, "--to", later(clock, 9), "--token", token(paid, sid), "--wait", "5")
    assert (code, out["error"]["code"]) == (1, "fee_declined")
    with paid.session_factory() as db:
        assert db.execute(select(Meeting).where(Meeting.session_id == sid)).scalar_one().status == "active"


def test_a_manual_refund_with_the_longest_refund_id_tells_the_customer(paid, clock, raw):
    # A refund_id may be 80 characters (the API's and the task's limit), so its change key
    # "rf-<refund_id>" may be 83: the activity entry keeps a key over 80 as its digest. Whether
    # the customer is told is read from that entry (send_refunds), so the digest must still name
    # the change, or the customer of such a refund is never told.
    shown = book(paid, clock, 3, "150.00")
    change_key = "rf-" + "r" * 80
    lifecycle.refund_booking(paid, shown["id"], "10.00", reason="goodwill", change_key=change_key)
    drain(paid)
    assert stripe_refunds(raw, intent_of(paid, shown["id"])) == [1000]
    assert emails(paid, shown["id"]).count("refund_issued_customer") == 1
