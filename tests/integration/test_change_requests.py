"""The edge API (services/lifecycle/requests.py) with the public tasks' own bodies: authority is
checked at the edge, the queued message carries a grant (never a token), the worker refuses
messages without a valid grant (`request.refused`), and a change republished changes nothing twice.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Activity, Booking, LedgerEntry, TaskOutbox
from services.booking import submit_booking
from services.booking.views import booking_object
from services.errors import OperationFailed
from services.lifecycle.requests import (
    change_status, request_approve, request_cancel, request_decline, request_refund, request_reschedule,
)
from services.tokens import make_manage_token as make_token
from tests.support import (
    PUBLIC_TASKS as PUBLIC, apply_config, booking_request, daily_slots, drain, on_localstripe, package_config,
    run_public, run_public_tasks_here,
)

STRIPE_KEY = "sk_test_sessionpack_grants"


@pytest.fixture
def c(container, stripe_url):
    container.answers = []
    return run_public_tasks_here(on_localstripe(container, stripe_url, STRIPE_KEY), answers=container.answers)


def book(c, clock, *, price="150.00", mode="automatic") -> dict:
    config = package_config(3 if mode == "automatic" else 1, price=price if mode == "automatic" else None)
    if mode == "manual":
        config["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = "manual"
    apply_config(c, config)
    n = 3 if mode == "automatic" else 1
    request = booking_request(daily_slots(clock() + timedelta(days=3), n, "10:00"),
                              payment_method="pm_card_visa" if mode == "automatic" and price else None)
    booking_id = submit_booking(c, request)
    drain(c)
    return show(c, booking_id)


def show(c, booking_id):
    with c.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), c.settings)


def queued(c) -> list[tuple[str, dict]]:
    with c.session_factory() as db:
        return [(r.task_name, dict(r.kwargs)) for r in db.execute(select(TaskOutbox).order_by(TaskOutbox.id)).scalars()
                if r.task_name in PUBLIC]


def refusals(c) -> list[dict]:
    with c.session_factory() as db:
        return [a.details | {"booking_id": a.booking_id} for a in db.execute(
            select(Activity).where(Activity.action == "request.refused").order_by(Activity.id)).scalars()]


def test_a_customer_cancel_travels_as_a_customer_grant_without_the_token(c, clock):
    shown = book(c, clock)
    s = shown["sessions"][0]
    token = s["manage_url"].rsplit("/", 1)[-1]
    change = request_cancel(c, [s["id"]], tokens=[token], reason="ill")
    assert change.booking_id == shown["id"] and change.plan["refund_cents"] == 2500
    (name, kwargs), = queued(c)
    assert name == "sessionpack.cancel_sessions" and token not in json.dumps(kwargs)
    assert kwargs["grant"].startswith("g1.customer.") and kwargs["change_id"] == str(change)
    assert change_status(c, shown["id"], change)["state"] == "queued"
    drain(c)
    assert c.answers[-1]["cancelled"] == [s["id"]]
    assert show(c, shown["id"])["sessions"][0]["status"] == "cancelled"
    assert change_status(c, shown["id"], change)["state"] == "done"
    # Republished (a new task id, the same message): the change is not made twice.
    assert run_public(c, name, kwargs)["replayed"] is True


def test_the_edge_refuses_a_wrong_token_before_anything_is_queued(c, clock):
    shown = book(c, clock)
    s0, s1 = shown["sessions"][:2]
    with pytest.raises(OperationFailed) as err:
        request_cancel(c, [s0["id"]], tokens=[make_token(c.settings.secret_key, s1["id"])])
    assert err.value.code == "invalid_token" and queued(c) == []


def test_admin_actions_carry_an_admin_grant_and_a_forged_or_tampered_one_is_refused(c, clock):
    shown = book(c, clock)
    change = request_refund(c, shown["id"], "10.00", reason="goodwill", refund_id="ticket-42")
    assert str(change) == "rf-ticket-42"
    (name, kwargs), = queued(c)
    assert kwargs["grant"].startswith("g1.admin.")
    # Tampered: a bigger amount under the same grant, and a message with no grant at all.
    tampered = run_public(c, name, {**kwargs, "amount": "150.00"}, task_id="tampered")
    assert tampered["error"]["code"] == "admin_grant_required"
    drain(c)
    # The same refund_id republished under a new task id refunds once.
    assert run_public(c, name, kwargs)["replayed"] is True
    drain(c)
    with c.session_factory() as db:
        refunds = db.execute(select(LedgerEntry.amount_cents).where(LedgerEntry.kind == "refund")).scalars().all()
    assert refunds == [1000]
    assert change_status(c, shown["id"], change)["state"] == "done"
    refused = refusals(c)
    assert [(r["code"], r["booking_id"], r["task"]) for r in refused] == [
        ("admin_grant_required", shown["id"], "sessionpack.refund_booking")]


def test_a_grant_for_one_booking_cannot_act_on_another_and_expires(c, clock):
    shown = book(c, clock)
    request_cancel(c, [shown["sessions"][0]["id"]], admin=True, refund=False)
    (name, kwargs), = queued(c)
    other = {**kwargs, "session_ids": [shown["sessions"][1]["id"]]}
    assert run_public(c, name, other)["error"]["code"] == "admin_grant_required"
    clock.advance(minutes=31)
    assert run_public(c, name, kwargs)["error"]["code"] == "admin_grant_required"
    assert [s["status"] for s in show(c, shown["id"])["sessions"]] == ["confirmed"] * 3


@pytest.mark.parametrize("admin", ["false", "no", 1])
def test_admin_as_a_string_is_refused_and_recorded(c, clock, admin):
    shown = book(c, clock)
    sid = shown["sessions"][0]["id"]
    answer = run_public(c, "sessionpack.cancel_sessions", {"session_ids": [sid], "admin": admin}, task_id="t-admin")
    assert answer["error"]["code"] == "invalid_request"
    assert show(c, shown["id"])["sessions"][0]["status"] == "confirmed"
    (refused,) = refusals(c)
    assert refused["booking_id"] == shown["id"] and refused["change"] == "t-admin"


@pytest.mark.parametrize("change_id", ["ap_mine", "dc_mine", "rf-ticket-7", "AP_mine"])
def test_a_caller_change_id_with_an_internal_prefix_is_refused(c, db_backend, clock, change_id):
    # ap_/dc_ make change_status read the booking's approval, rf-<id> is a refund's key: a caller's
    # change_id with one of them was misreported (a queued cancel said `done`), so it is refused
    # at the edge and on the broker (under a genuine customer grant), with nothing queued or changed.
    from services.errors import InvalidInput
    from services.grants import make_grant

    shown = book(c, clock)
    s = shown["sessions"][0]
    token = s["manage_url"].rsplit("/", 1)[-1]
    with pytest.raises(InvalidInput) as err:
        request_cancel(c, [s["id"]], tokens=[token], change_id=change_id)
    assert err.value.code == "invalid_request" and "change_id" in err.value.message
    with pytest.raises(InvalidInput):
        request_reschedule(c, s["id"], shown["sessions"][1]["start"], token=token, change_id=change_id)
    assert queued(c) == []
    kwargs = {"session_ids": [s["id"]], "change_id": change_id}
    kwargs["grant"] = make_grant(c.settings.secret_key, "sessionpack.cancel_sessions", kwargs, role="customer",
                                 now=c.clock())
    answer = run_public(c, "sessionpack.cancel_sessions", kwargs)
    assert answer["error"]["code"] == "invalid_request" and "change_id" in answer["error"]["message"]
    assert show(c, shown["id"])["sessions"][0]["status"] == "confirmed"
    assert queued(c) == []


def test_approve_and_decline_keep_their_own_prefixes(c, clock):
    first = book(c, clock, mode="manual")
    from services.errors import InvalidInput

    with pytest.raises(InvalidInput):
        request_approve(c, first["id"], change_id="dc_other")
    change = request_approve(c, first["id"], change_id="ap_desk-1")
    assert str(change) == "ap_desk-1"
    drain(c)
    assert change_status(c, first["id"], change)["state"] == "done"


def test_approve_and_decline_through_the_edge(c, clock):
    first = book(c, clock, mode="manual")
    assert first["status"] == "awaiting_approval"
    change = request_approve(c, first["id"])
    assert str(change).startswith("ap_") and change_status(c, first["id"], change)["state"] == "queued"
    drain(c)
    assert show(c, first["id"])["status"] == "confirmed"
    assert change_status(c, first["id"], change)["state"] == "done"


def test_reschedule_through_the_edge_as_the_customer(c, clock):
    shown = book(c, clock)
    s = shown["sessions"][0]
    token = s["manage_url"].rsplit("/", 1)[-1]
    to = daily_slots(clock() + timedelta(days=10), 1, "12:00")[0]
    change = request_reschedule(c, s["id"], to, token=token)
    (name, kwargs), = queued(c)
    assert "token" not in kwargs and kwargs["grant"].startswith("g1.customer.")
    drain(c)
    assert c.answers[-1]["fee_cents"] == 500
    assert change_status(c, shown["id"], change)["state"] == "done"


def cli(c, *argv) -> tuple[int, dict | None]:
    """The `sessionpack` command on this container (its tasks stay in the outbox for drain())."""
    import json

    from click.testing import CliRunner

    from cli.main import main
    from core.wiring import set_container

    set_container(c)
    try:
        result = CliRunner().invoke(main, list(argv))
    finally:
        set_container(None)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip() else None)


def test_the_cli_refund_id_refunds_once_and_each_plain_refund_is_its_own(c, clock):
    shown = book(c, clock)
    for _ in range(2):
        code, out = cli(c, "refund", shown["id"], "--amount", "5.00", "--admin", "--refund-id", "desk-1")
        assert code == 0 and out["refund_id"] == "desk-1" and out["change_id"] == "rf-desk-1"
    for _ in range(2):
        code, out = cli(c, "refund", shown["id"], "--amount", "1.00", "--admin")
        assert code == 0 and out["refund_id"] != "desk-1"
    (name, kwargs), *_ = queued(c)
    assert "grant" in kwargs and "token" not in str(kwargs)
    drain(c)
    with c.session_factory() as db:
        refunds = sorted(db.execute(select(LedgerEntry.amount_cents).where(LedgerEntry.kind == "refund")).scalars())
    assert refunds == [100, 100, 500]
    code, out = cli(c, "refund", shown["id"], "--amount", "1.00")
    assert code == 2 and out["error"]["code"] == "admin_required"


def test_cli_admin_and_customer_changes_travel_with_grants(c, clock):
    shown = book(c, clock)
    first, second, _ = shown["sessions"]
    token = second["manage_url"].rsplit("/", 1)[-1]
    assert cli(c, "cancel", first["id"], "--admin", "--no-refund")[0] == 0
    assert cli(c, "cancel", second["id"], "--token", token)[0] == 0
    rows = queued(c)
    assert [k["grant"].split(".")[1] for _, k in rows] == ["admin", "customer"]
    assert token not in json.dumps(rows)
    drain(c)
    assert [s["status"] for s in show(c, shown["id"])["sessions"]] == ["cancelled", "cancelled", "confirmed"]
