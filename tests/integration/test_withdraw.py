"""Withdrawing a request that awaits the owner's approval (manual booking mode) through the normal
cancel path: manage token or admin, in-process and through the CLI, idempotent, and race-safe
with the owner's approval (SQLite and PostgreSQL)."""
from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from models import Activity, Booking, LedgerEntry, OutboxEmail, Payment, SagaStep, Session
from services import lifecycle
from services.booking import approval as approval_phase
from services.booking import approve_booking, decline_booking, submit_booking
from services.booking.views import booking_object
from services.errors import OperationFailed
from services.lifecycle import withdraw
from services.scheduling import list_slots
from services.tokens import make_token
from tests.reliability.invariants import check_invariants
from tests.support import apply_config, booking_request, daily_slots, drain, inline_cli, package_config

WITHDRAWN_EMAILS = ["request_withdrawn_customer", "request_withdrawn_owner"]


def manual_config(**kwargs):
    cfg = package_config(1, **kwargs)
    cfg["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = "manual"
    return cfg


@pytest.fixture
def lc(container):
    return container


def request_slot(c, clock, *, days=2, email="sam@example.org", **config) -> tuple[str, list[str]]:
    apply_config(c, manual_config(**config))
    slot = daily_slots(clock() + timedelta(days=days), 1)
    booking_id = submit(c, slot, email=email)
    assert show(c, booking_id)["status"] == "awaiting_approval"
    return booking_id, slot


def submit(c, slot, **kw) -> str:
    booking_id = submit_booking(c, booking_request(slot, **kw))
    drain(c)
    return booking_id


def show(c, booking_id: str) -> dict:
    with c.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), c.settings)


def session_id(c, booking_id: str) -> str:
    return show(c, booking_id)["sessions"][0]["id"]


def token(c, sid: str) -> str:
    return make_token(c.settings.secret_key, sid)


def withdraw_as_customer(c, booking_id: str, *, key: str | None = None, **kwargs) -> dict:
    sid = session_id(c, booking_id)
    result = lifecycle.cancel_sessions(c, [sid], tokens=[token(c, sid)], change_key=key or uuid.uuid4().hex, **kwargs)
    drain(c)
    return result


def emails(c, booking_id: str) -> list[tuple[str, str]]:
    with c.session_factory() as db:
        return [(e.kind, e.status) for e in db.execute(select(OutboxEmail).where(OutboxEmail.booking_id == booking_id)
                                                       .order_by(OutboxEmail.id)).scalars()]


def withdrawn_emails(c, booking_id: str) -> list[str]:
    return sorted(kind for kind, _ in emails(c, booking_id) if kind.startswith("request_withdrawn"))


def free_slots(c, clock, slot: str) -> list[str]:
    with c.session_factory() as db:
        return list_slots(db, "coach/pkg", slot[:10], slot[:10], "UTC", now=clock())


def refusal(fn, *args, **kwargs) -> OperationFailed:
    with pytest.raises(OperationFailed) as err:
        fn(*args, **kwargs)
    return err.value


def assert_withdrawn(c, booking_id: str, actor: str) -> dict:
    shown = show(c, booking_id)
    assert shown["status"] == "cancelled"
    assert shown["failure"]["code"] == "withdrawn" and shown["failure"]["step"] == "approval"
    assert [s["status"] for s in shown["sessions"]] == ["cancelled"]
    entries = {a["action"]: a for a in shown["activity"]}
    assert entries["booking.withdrawn"]["actor"] == actor
    assert entries["session.cancelled"]["actor"] == actor and entries["session.cancelled"]["details"]["withdrawn"]
    assert "booking.approved" not in entries
    # Exactly one email to each side, delivered.
    assert withdrawn_emails(c, booking_id) == WITHDRAWN_EMAILS
    assert all(status == "sent" for _, status in emails(c, booking_id))
    # No fee and no money: nothing was ever authorized for a request.
    with c.session_factory() as db:
        assert db.execute(select(LedgerEntry).where(LedgerEntry.booking_id == booking_id)).first() is None
        assert db.execute(select(Payment).where(Payment.booking_id == booking_id)).first() is None
        step = db.execute(select(SagaStep).where(SagaStep.booking_id == booking_id, SagaStep.step == "approval")).scalar_one()
        assert step.outcome == "failed"
    assert shown["paid"] == shown["refunded"] == shown["fees"] == "0.00"
    return shown


# -- withdrawing with the manage token ---------------------------------------------------------------


def test_customer_withdraws_a_request_with_the_manage_token(lc, db_backend, clock):
    # The cancel policy forbids cancelling: it binds bookings, not a request nobody accepted yet.
    booking_id, slot = request_slot(lc, clock, cancel={"allowed": False, "min_notice_hours": 72, "refund_percent": 0})
    assert slot[0] not in free_slots(lc, clock, slot[0])
    preview = lifecycle.preview_cancel(lc, [session_id(lc, booking_id)], [token(lc, session_id(lc, booking_id))])
    assert preview["withdraw"] is True and preview["refund_cents"] == 0

    result = withdraw_as_customer(lc, booking_id, reason="found another time")
    assert result["withdrawn"] is True and result["refund_cents"] == 0 and result["booking_id"] == booking_id
    shown = assert_withdrawn(lc, booking_id, "customer")
    assert "found another time" in shown["failure"]["message"]
    with lc.session_factory() as db:
        owner_mail = db.execute(select(OutboxEmail).where(OutboxEmail.kind == "request_withdrawn_owner")).scalar_one()
        assert owner_mail.to_addr == "kim@example.com" and "found another time" in owner_mail.text_body

    # The slot is free again: shown as free, and a new request for it is held.
    assert slot[0] in free_slots(lc, clock, slot[0])
    other = submit(lc, slot, email="other@example.org")
    assert other != booking_id and show(lc, other)["status"] == "awaiting_approval"

    # The owner's decision now answers with a clear error; the function-level decline is a no-op.
    err = refusal(approve_booking, lc, booking_id)
    assert err.code == "not_awaiting_approval" and "cancelled" in err.message and "withdrawn" in err.message
    assert decline_booking(lc, booking_id, reason="too late") == "cancelled"
    drain(lc)
    assert show(lc, booking_id)["failure"]["code"] == "withdrawn"
    assert withdrawn_emails(lc, booking_id) == WITHDRAWN_EMAILS
    assert "booking_declined_customer" not in [k for k, _ in emails(lc, booking_id)]
    assert check_invariants(lc) == []


def test_withdrawing_twice_changes_nothing_and_emails_once(lc, db_backend, clock):
    booking_id, _ = request_slot(lc, clock)
    withdraw_as_customer(lc, booking_id, key="withdraw-1")
    before = show(lc, booking_id)
    # The same change again (a redelivered task): a replay.
    assert withdraw_as_customer(lc, booking_id, key="withdraw-1")["replayed"] is True
    # A new withdrawal, as the customer or the admin: refused, clearly, and nothing changes.
    err = refusal(withdraw_as_customer, lc, booking_id, key="withdraw-2")
    assert err.code == "session_already_cancelled" and "withdrawn" in err.message
    sid = session_id(lc, booking_id)
    err = refusal(lifecycle.cancel_sessions, lc, [sid], admin=True, change_key="withdraw-3")
    assert err.code == "session_already_cancelled"
    drain(lc)
    after = show(lc, booking_id)
    assert withdrawn_emails(lc, booking_id) == WITHDRAWN_EMAILS
    assert (after["status"], after["failure"], after["sessions"]) == (before["status"], before["failure"], before["sessions"])
    actions = [a["action"] for a in after["activity"]]
    assert actions.count("booking.withdrawn") == 1 and actions.count("session.cancelled") == 1


def test_admin_withdraws_a_request(lc, clock):
    booking_id, _ = request_slot(lc, clock)
    result = lifecycle.cancel_sessions(lc, [session_id(lc, booking_id)], admin=True, change_key="adm")
    drain(lc)
    assert result["withdrawn"] is True
    assert_withdrawn(lc, booking_id, "admin")
    with lc.session_factory() as db:
        texts = [e.text_body for e in db.execute(select(OutboxEmail).where(OutboxEmail.kind.like("request_withdrawn%")))
                 .scalars()]
    assert len(texts) == 2 and all("administrator" in t for t in texts)


def test_a_request_cannot_be_rescheduled_and_a_forged_token_withdraws_nothing(lc, clock):
    booking_id, _ = request_slot(lc, clock)
    sid = session_id(lc, booking_id)
    err = refusal(lifecycle.reschedule_session, lc, sid, daily_slots(clock() + timedelta(days=5), 1)[0],
                  token=token(lc, sid), change_key="mv")
    assert err.code == "session_not_confirmed" and "withdraw" in err.message
    err = refusal(lifecycle.cancel_sessions, lc, [sid], tokens=[token(lc, "ss_other")], change_key="forged")
    assert err.code == "invalid_token"
    assert show(lc, booking_id)["status"] == "awaiting_approval"


def test_a_request_is_withdrawn_as_a_whole():
    # Manual mode is single-session by the contract's rules; the rule still holds for any request.
    sessions = [SimpleNamespace(id=f"ss_{n}", number=n) for n in (1, 2)]
    booking = SimpleNamespace(id="bk_x", sessions=sessions)
    withdraw.check_whole_request(booking, sessions)
    with pytest.raises(OperationFailed) as err:
        withdraw.check_whole_request(booking, sessions[:1])
    assert err.value.code == "withdraw_whole_request" and "ss_2" in err.value.message


# -- races with the owner's approval ------------------------------------------------------------------


def _pause_inside(monkeypatch, target, name, when, other):
    """Wrap `target.name`: the first call for which `when(*args)` holds starts `other` in a thread
    and gives it time to reach the booking's lock before carrying on (still inside the first
    transaction). Returns the thread's outcome holder."""
    original = getattr(target, name)
    outcome: dict = {}

    def run_other():
        try:
            outcome["result"] = other()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs) and "thread" not in outcome:
            outcome["thread"] = threading.Thread(target=run_other)
            outcome["thread"].start()
            outcome["thread"].join(0.7)  # it must wait for our lock, not finish
            outcome["finished_early"] = not outcome["thread"].is_alive()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return outcome


def test_approval_first_wins_and_the_withdrawal_is_refused(lc, db_backend, clock, monkeypatch):
    booking_id, _ = request_slot(lc, clock)
    sid = session_id(lc, booking_id)
    tok = token(lc, sid)
    outcome = _pause_inside(
        monkeypatch, approval_phase, "mark_step", lambda db, bid, step, result, *a: step == "approval" and result == "done",
        lambda: lifecycle.cancel_sessions(lc, [sid], tokens=[tok], change_key="late-withdraw"))
    assert approve_booking(lc, booking_id) == "pending"
    outcome["thread"].join(30)
    assert not outcome["finished_early"]
    assert isinstance(outcome.get("error"), OperationFailed) and outcome["error"].code == "session_not_confirmed"
    assert "pending" in outcome["error"].message
    drain(lc)
    shown = show(lc, booking_id)
    assert shown["status"] == "confirmed" and shown["failure"] is None
    assert withdrawn_emails(lc, booking_id) == []
    assert check_invariants(lc) == []


def test_withdrawal_first_wins_and_the_approval_is_refused(lc, db_backend, clock, monkeypatch):
    booking_id, _ = request_slot(lc, clock)
    outcome = _pause_inside(monkeypatch, withdraw, "queue_emails", lambda *a, **k: True,
                            lambda: approve_booking(lc, booking_id))
    withdraw_as_customer(lc, booking_id)
    outcome["thread"].join(30)
    assert not outcome["finished_early"]
    assert isinstance(outcome.get("error"), OperationFailed) and outcome["error"].code == "not_awaiting_approval"
    drain(lc)
    assert_withdrawn(lc, booking_id, "customer")
    with lc.session_factory() as db:
        assert db.execute(select(Activity).where(Activity.action == "booking.approved")).first() is None
        assert {s.status for s in db.execute(select(Session).where(Session.booking_id == booking_id)).scalars()} == {"cancelled"}
    assert check_invariants(lc) == []


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(lc):
    with inline_cli(lc) as run:
        yield run


def test_cli_withdraw_then_approve_and_decline_are_refused(cli, lc, clock):
    booking_id, slot = request_slot(lc, clock)
    sid = session_id(lc, booking_id)
    code, out = cli("cancel", sid, "--token", token(lc, sid), "--reason", "plans changed", "--wait", "5")
    assert code == 0, out
    assert out["status"] == "cancelled" and out["failure"]["code"] == "withdrawn"
    assert_withdrawn(lc, booking_id, "customer")
    assert slot[0] in free_slots(lc, clock, slot[0])

    for command in (("approve", booking_id, "--admin"), ("decline", booking_id, "--admin")):
        code, out = cli(*command)
        assert (code, out["error"]["code"]) == (1, "not_awaiting_approval")
        assert "cancelled" in out["error"]["message"] and "withdrawn" in out["error"]["message"]
    code, out = cli("cancel", sid, "--token", token(lc, sid))
    assert (code, out["error"]["code"]) == (1, "session_already_cancelled")
    public = {"sessionpack.cancel_sessions", "sessionpack.approve_booking", "sessionpack.decline_booking"}
    # The refusals enqueued nothing.
    assert [name for name in lc.celery_app.sent if name in public] == ["sessionpack.cancel_sessions"]
    assert withdrawn_emails(lc, booking_id) == WITHDRAWN_EMAILS


def test_cli_admin_withdraw_without_wait_reports_the_withdrawal(cli, lc, clock):
    booking_id, _ = request_slot(lc, clock)
    sid = session_id(lc, booking_id)
    code, out = cli("cancel", sid, "--admin")
    assert code == 0 and out["status"] == "queued" and out["withdraw"] is True and out["refund"] == "0.00"
    assert_withdrawn(lc, booking_id, "admin")
