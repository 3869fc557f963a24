"""Abuse through the broker: what someone who can publish on the broker (or a frontend that
forwards what it is given) tries, published raw with kombu to a real worker on PostgreSQL and a
private Redis, with payments through localstripe and meetings on a loopback Zoom.

Each case starts from a fresh confirmed package (3 sessions, $150, Zoom), publishes its messages,
waits for the worker to answer them (task events), and then measures the harm: any change to the
sessions, bookings, ledger, Stripe refunds, Zoom meetings or emails (for an attack that must
change nothing), or any token, name, email or card reference in the task events or the worker
log, or a task of the booking that does not show its booking id. Each case adds a row to the
"abuse through the broker" table printed at the end of the run (conftest.py).

To add an attack: append an `AbuseCase` to `CASES` (finding, what is tried, `run(ctx)` publishing
with `ctx.publish(...)`, and `expect`: "refused" (every message answered with an error and
recorded), "ignored" (an internal task that finds nothing to do) or "allowed" (a genuine request,
whose only harm would be a leak or a double effect, measured by `harm`).
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from sqlalchemy import func, select

from models import Booking, LedgerEntry, Meeting, OutboxEmail, Session
from services.booking.ids import booking_id_for
from services.booking.views import booking_object
from services.grants import make_grant
from tests.broker import EventCapture, publish_raw
from tests.support import booking_request, daily_slots

from .conftest import ABUSE, AbuseResult
from .harness import ProxyRule, wait_until
from .test_fault_matrix import N, WorkerRig, outcome

pytestmark = pytest.mark.reliability

CODE = re.compile(r"'code': '([a-z_]+)'")


@dataclass
class Ctx:
    """One case's world: the rig, the confirmed booking (its object), the events being captured."""

    rig: WorkerRig
    events: EventCapture
    booking: dict
    sent: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    extra_bookings: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.rig.redis.url

    def session(self, number: int) -> dict:
        return self.booking["sessions"][number - 1]

    def token(self, number: int) -> str:
        return self.session(number)["manage_url"].rsplit("/", 1)[-1]

    def publish(self, task: str, args=(), kwargs=None, task_id: str | None = None) -> str:
        task_id = publish_raw(self.url, task, args, kwargs, task_id=task_id)
        self.sent.append(task_id)
        return task_id

    def granted(self, task: str, kwargs: dict, role: str = "admin") -> dict:
        """A genuine grant, as the CLI or the web process would make it."""
        return {**kwargs, "grant": make_grant(self.rig.env["SECRET_KEY"], task, kwargs, role=role,
                                              now=datetime.now(timezone.utc))}

    def later(self, days: int = 9, hhmm: str = "12:00") -> str:
        return daily_slots(datetime.now(timezone.utc) + timedelta(days=days), 1, hhmm)[0]


@dataclass
class AbuseCase:
    finding: str
    attack: str
    run: Callable[[Ctx], None]
    expect: str = "refused"  # refused | ignored | allowed
    harm: Callable[[Ctx, dict, dict], list[str]] | None = None  # None: any change of state is harm


# -- the attacks --------------------------------------------------------------------------------

FORGED = "g1.admin.4102444800." + "A" * 43


def _refund_admin(ctx):
    ctx.publish("sessionpack.refund_booking", kwargs={"booking_id": ctx.booking["id"], "amount": "100.00",
                                                      "admin": True})


def _refund_forged(ctx):
    ctx.publish("sessionpack.refund_booking", kwargs={"booking_id": ctx.booking["id"], "amount": "100.00",
                                                      "admin": True, "grant": FORGED})


def _refund_tampered(ctx):
    genuine = ctx.granted("sessionpack.refund_booking", {"booking_id": ctx.booking["id"], "amount": "1.00",
                                                         "admin": True, "refund_id": "t-1"})
    ctx.publish("sessionpack.refund_booking", kwargs={**genuine, "amount": "150.00"})


def _cancel_admin(ctx):
    ctx.publish("sessionpack.cancel_sessions", kwargs={"session_ids": [ctx.session(1)["id"]], "admin": True})


def _reschedule_admin(ctx):
    ctx.publish("sessionpack.reschedule_session", kwargs={"session_id": ctx.session(1)["id"], "to": ctx.later(),
                                                          "admin": True})


def _approve(ctx):
    ctx.publish("sessionpack.approve_booking", kwargs={"booking_id": ctx.booking["id"]})


def _decline(ctx):
    ctx.publish("sessionpack.decline_booking", kwargs={"booking_id": ctx.booking["id"], "reason": "x"})


def _customer_grant_moved(ctx):
    genuine = ctx.granted("sessionpack.cancel_sessions", {"session_ids": [ctx.session(1)["id"]], "refund": True},
                          role="customer")
    ctx.publish("sessionpack.cancel_sessions", kwargs={**genuine, "session_ids": [ctx.session(2)["id"]]})


def _admin_grant_for_another_task(ctx):
    kwargs = {"booking_id": ctx.booking["id"], "admin": True}
    genuine = ctx.granted("sessionpack.approve_booking", kwargs)
    ctx.publish("sessionpack.refund_booking", kwargs={**genuine, "amount": "150.00"})


def _finish_cancellation_confirmed(ctx):
    ctx.publish("sessionpack.finish_cancellation", kwargs={"booking_id": ctx.booking["id"],
                                                            "session_ids": [s["id"] for s in ctx.booking["sessions"]]})


def _send_refunds_forged(ctx):
    with ctx.rig.c.session_factory() as db:
        capture_key, intent = db.execute(select(LedgerEntry.idempotency_key, LedgerEntry.stripe_object_id).where(
            LedgerEntry.booking_id == ctx.booking["id"], LedgerEntry.kind == "capture")).one()
    ctx.publish("sessionpack.send_refunds", kwargs={
        "booking_id": ctx.booking["id"], "notify": True, "change_key": "x", "reason": "forged",
        "refunds": [{"key": capture_key, "intent_id": intent}, {"key": "made-up", "intent_id": intent}]})


def _send_refunds_unknown_argument(ctx):
    with ctx.rig.c.session_factory() as db:
        capture_key = db.execute(select(LedgerEntry.idempotency_key).where(
            LedgerEntry.booking_id == ctx.booking["id"], LedgerEntry.kind == "capture")).scalar_one()
    ctx.publish("sessionpack.send_refunds", kwargs={"booking_id": ctx.booking["id"], "amount_cents": 15000,
                                                    "refunds": [{"key": capture_key}]})


def _capture_with_intent(ctx):
    ctx.publish("sessionpack.capture_payment", kwargs={"booking_id": ctx.booking["id"], "intent_id": "pi_forged"})


def _compensate_confirmed(ctx):
    ctx.publish("sessionpack.compensate_booking", kwargs={"booking_id": ctx.booking["id"]})


def _cancel_admin_false(ctx):
    ctx.publish("sessionpack.cancel_sessions", kwargs={"session_ids": [ctx.session(1)["id"]], "admin": "false"})


def _reschedule_admin_no(ctx):
    ctx.publish("sessionpack.reschedule_session", kwargs={"session_id": ctx.session(1)["id"], "to": ctx.later(),
                                                          "admin": "no"})


def _cancel_unknown_key(ctx):
    ctx.publish("sessionpack.cancel_sessions", kwargs={"session_ids": [ctx.session(1)["id"]], "is_admin": True,
                                                       "tokens": [ctx.token(1)]})


def _cancel_huge_reason(ctx):
    ctx.publish("sessionpack.cancel_sessions", kwargs={"session_ids": [ctx.session(1)["id"]],
                                                       "tokens": [ctx.token(1)], "reason": "x" * 1_000_000})


def _cancel_positional(ctx):
    ctx.publish("sessionpack.cancel_sessions", args=[[ctx.session(1)["id"]], None, True])


def _raw_token_cancel(ctx):
    ctx.secrets += [ctx.token(1)]
    ctx.publish("sessionpack.cancel_sessions", kwargs={"session_ids": [ctx.session(1)["id"]],
                                                       "tokens": [ctx.token(1)], "reason": "mail sam@example.org"})


def _token_reschedule_retried(ctx):
    ctx.secrets += [ctx.token(2)]
    ctx.rig.proxy.add(ProxyRule("POST", r"/v1/payment_intents", "fail", times=2, status=503))
    task_id = ctx.publish("sessionpack.reschedule_session", kwargs={"session_id": ctx.session(2)["id"],
                                                                    "to": ctx.later(), "token": ctx.token(2)})
    ctx.events.wait_for(lambda: [e for e in ctx.events.of(task_id) if e["type"] == "task-retried"], 60, "a retry")


def _raw_submit(ctx):
    request = booking_request(daily_slots(datetime.now(timezone.utc) + timedelta(days=12), N, "15:00"),
                              payment_method="pm_card_visa", name="Zed Private", email="zed@example.net")
    ctx.secrets += ["Zed Private", "zed@example.net", "pm_card_visa"]
    ctx.publish("sessionpack.submit_booking", args=[request])
    booking_id = booking_id_for(request["request_id"])
    ctx.extra_bookings.append(booking_id)
    wait_until(lambda: outcome(ctx.rig.c, booking_id)[0] not in ("pending", "missing"), 60, "the raw booking")


def _change_id_internal_prefix(ctx):
    # a genuine customer grant, but the change_id of an approval: change_status would misreport it
    kwargs = {"session_ids": [ctx.session(1)["id"]], "change_id": "ap_mine"}
    ctx.publish("sessionpack.cancel_sessions", kwargs=ctx.granted("sessionpack.cancel_sessions", kwargs, role="customer"))


def _refund_replayed(ctx):
    message = ctx.granted("sessionpack.refund_booking", {"booking_id": ctx.booking["id"], "amount": "10.00",
                                                         "admin": True, "refund_id": "ticket-7"})
    ctx.publish("sessionpack.refund_booking", kwargs=message)
    ctx.events.finished(ctx.sent[-1])
    ctx.publish("sessionpack.refund_booking", kwargs=message)  # a new task id, the same refund_id


# -- harm measured for the allowed cases ---------------------------------------------------------


def _only_session_cancelled(number):
    def harm(ctx, before, after):
        expected = dict(before["sessions"])
        sid = ctx.session(number)["id"]
        expected[sid] = ("cancelled", expected[sid][1])
        return [] if dict(after["sessions"]) == expected else [f"sessions: {after['sessions']}"]
    return harm


def _moved_with_one_fee(ctx, before, after):
    fees = [row for row in after["ledger"] if row[0] == "fee" and row[2] == "succeeded"]
    return [] if len(fees) == 1 else [f"fees charged: {fees}"]


def _booked_once(ctx, before, after):
    status = outcome(ctx.rig.c, ctx.extra_bookings[0])[0]
    return [] if status == "confirmed" else [f"the raw booking ended {status}"]


def _refunded_once(ctx, before, after):
    refunds = [row for row in after["ledger"] if row[0] == "refund"]
    total = after["stripe_refunded"] - before["stripe_refunded"]
    return [] if len(refunds) == 1 and total == 1000 else [f"refunds {refunds}, {total} cents at Stripe"]


CASES: list[AbuseCase] = [
    AbuseCase("1", "refund_booking admin:true, no grant ($100)", _refund_admin),
    AbuseCase("1", "refund_booking with a forged grant", _refund_forged),
    AbuseCase("1", "refund_booking: genuine $1 grant, amount changed to $150", _refund_tampered),
    AbuseCase("1", "refund_booking under an approve_booking grant", _admin_grant_for_another_task),
    AbuseCase("1", "cancel_sessions admin:true, no token, no grant", _cancel_admin),
    AbuseCase("1", "reschedule_session admin:true (no fee), no grant", _reschedule_admin),
    AbuseCase("1", "approve_booking without a grant", _approve),
    AbuseCase("1", "decline_booking without a grant", _decline),
    AbuseCase("1", "customer grant of session 1 used for session 2", _customer_grant_moved),
    AbuseCase("1", "finish_cancellation of confirmed sessions", _finish_cancellation_confirmed, "ignored"),
    AbuseCase("1", "send_refunds with a key and intent of the message", _send_refunds_forged, "ignored"),
    AbuseCase("1", "compensate_booking of a confirmed booking", _compensate_confirmed, "ignored"),
    AbuseCase("1", "send_refunds with an unknown amount_cents argument", _send_refunds_unknown_argument),
    AbuseCase("1", "capture_payment with an intent_id of the message", _capture_with_intent),
    AbuseCase("2", "cancel_sessions admin:\"false\", no token", _cancel_admin_false),
    AbuseCase("2", "reschedule_session admin:\"no\"", _reschedule_admin_no),
    AbuseCase("2", "cancel_sessions with an unknown is_admin:true", _cancel_unknown_key),
    AbuseCase("2", "cancel_sessions with a 1 MB reason", _cancel_huge_reason),
    AbuseCase("2", "cancel_sessions with positional arguments", _cancel_positional),
    AbuseCase("2", "cancel_sessions, customer grant, change_id ap_ (an internal prefix)", _change_id_internal_prefix),
    AbuseCase("3", "customer cancel with a raw token (no argsrepr)", _raw_token_cancel, "allowed",
              _only_session_cancelled(1)),
    AbuseCase("3", "token reschedule retried after a Stripe 503", _token_reschedule_retried, "allowed",
              _moved_with_one_fee),
    AbuseCase("3+10", "submit_booking from a non-Python client", _raw_submit, "allowed", _booked_once),
    AbuseCase("9", "manual refund republished, same refund_id", _refund_replayed, "allowed", _refunded_once),
]


# -- the rig and the measurement -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stripe_base():
    from services.devtools.localstripe import running_localstripe

    with running_localstripe() as url:
        yield url


@pytest.fixture(scope="module")
def abuse_rig(tmp_path_factory, postgres_db, stripe_base):
    from models.db import make_engine, migrate
    from tests.servers import ensure_postgres

    ensure_postgres()
    engine = make_engine(postgres_db.url)
    migrate(engine)
    engine.dispose()
    rig = WorkerRig(tmp_path_factory.mktemp("abuse-rig"), postgres_db, stripe_base)
    yield rig
    rig.close()


def snapshot(ctx: Ctx) -> dict:
    import stripe

    c, booking_id = ctx.rig.c, ctx.booking["id"]
    with c.session_factory() as db:
        sessions = sorted((s.id, (s.status, s.start_at)) for s in db.execute(
            select(Session).where(Session.booking_id == booking_id)).scalars())
        ledger = sorted((e.kind, e.amount_cents, e.status) for e in db.execute(
            select(LedgerEntry).where(LedgerEntry.booking_id == booking_id)).scalars())
        meetings = sorted((m.session_id, m.status) for m in db.execute(select(Meeting).join(
            Session, Session.id == Meeting.session_id).where(Session.booking_id == booking_id)).scalars())
        booking_status = db.get(Booking, booking_id).status
        emails = db.execute(select(func.count()).select_from(OutboxEmail)
                            .where(OutboxEmail.booking_id == booking_id)).scalar_one()
        intent = next(e.stripe_object_id for e in db.execute(select(LedgerEntry).where(
            LedgerEntry.booking_id == booking_id, LedgerEntry.kind == "capture")).scalars())
    client = stripe.StripeClient("sk_test_sessionpack_matrix", base_addresses={"api": ctx.rig.stripe_base}).v1
    refunded = sum(r.amount for r in client.refunds.list(params={"payment_intent": intent}).auto_paging_iter())
    with ctx.rig.zoom._lock:
        zoom = sorted(ctx.rig.zoom.meetings)
    return {"sessions": sessions, "ledger": ledger, "meetings": meetings, "booking": booking_status,
            "emails": emails, "stripe_refunded": refunded, "zoom": zoom}


def _answer(ctx: Ctx, task_id: str) -> tuple[str, str | None]:
    """How the worker answered a message: ("refused", code), ("ran", None) or ("failed", exc)."""
    end = ctx.events.finished(task_id, 90)
    if end["type"] == "task-failed":
        return "failed", str(end.get("exception"))[:80]
    code = CODE.search(str(end.get("result") or ""))
    return ("refused", code.group(1)) if code else ("ran", None)


def _leaks(ctx: Ctx, log: str) -> list[str]:
    tokens = [s["manage_url"].rsplit("/", 1)[-1] for s in ctx.booking["sessions"]]
    customer = [ctx.booking["customer"]["name"], ctx.booking["customer"]["email"]]
    dumped = repr(ctx.events.all())
    found = [f"{s[:14]}... in the task events" for s in {*tokens, *customer, *ctx.secrets} if s in dumped]
    # (A PaymentMethod id is useless without our Stripe key: hidden from the events, not the log.)
    found += [f"{s[:14]}... in the worker log" for s in {*tokens, *ctx.secrets} if s in log and not s.startswith("pm_")]
    return found


def _unlabelled(ctx: Ctx) -> list[str]:
    """Tasks of the case's bookings whose reported arguments do not name the booking."""
    ours = {ctx.booking["id"], *ctx.extra_bookings}
    missing = []
    for e in ctx.events.all():
        if e["type"] != "task-received" or not (e.get("name") or "").startswith("sessionpack."):
            continue
        if e["uuid"] in ctx.sent or any(b in (e.get("kwargs") or "") for b in ours):
            if not re.search(r"'booking_id': \[?'bk_", e.get("kwargs") or ""):
                missing.append(f"{e['name']} shows no booking id")
    return missing


@pytest.mark.parametrize("case", CASES, ids=[f"{c.finding}-{c.attack}" for c in CASES])
def test_abuse_through_the_broker(case: AbuseCase, abuse_rig: WorkerRig):
    rig = abuse_rig
    rig.supervise()
    rig.reset()
    log_start = len(rig.worker.log())
    with EventCapture(rig.redis.url) as events:
        booking_id = rig.submit()
        assert rig.settle(booking_id) == "confirmed"
        with rig.c.session_factory() as db:
            shown = booking_object(db, db.get(Booking, booking_id), rig.c.settings)
        ctx = Ctx(rig, events, shown)
        before = snapshot(ctx)
        case.run(ctx)
        answers = [_answer(ctx, task_id) for task_id in ctx.sent]
        rig.quiesce()
        time.sleep(0.5)  # the last events of the follow-up tasks
        after = snapshot(ctx)
    harm = []
    if case.harm is None:
        harm += [f"{key} changed: {before[key]} -> {after[key]}" for key in before if before[key] != after[key]]
    else:
        harm += case.harm(ctx, before, after)
    harm += _leaks(ctx, rig.worker.log()[log_start:]) + _unlabelled(ctx)
    refused = sum(1 for state, _ in answers if state == "refused")
    codes = sorted({code for state, code in answers if state == "refused" and code})
    if case.expect == "refused" and refused != len(answers):
        harm.append(f"answered {answers}, not refused")
    if case.expect == "ignored" and any(state == "failed" for state, _ in answers):
        harm.append(f"failed: {answers}")
    ABUSE.append(AbuseResult(case.finding, case.attack, messages=len(answers), refused=refused,
                             outcome=", ".join(codes) or case.expect, harm=harm))
    assert harm == []
