"""Abuse through the broker, issue 16 findings 4, 6, 7, 8 and 9: raw kombu messages (Celery's
protocol 2, JSON, published with kombu alone, as any frontend could) to a real worker on
PostgreSQL and a private Redis, payments on localstripe. Each attack is tried, refused or made
harmless, and adds a row to the reliability table (suite "abuse"): harm done = problems.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import stripe
from sqlalchemy import select, text

from models import Activity, Booking, OutboxEmail, Session
from services.booking.ids import booking_id_for
from services.booking.views import booking_object
from services.lifecycle.changes import entries_of_change_query
from tests.support import booking_request, daily_slots, iso, local, package_config

from .harness import wait_until
from .test_fault_matrix import (  # noqa: F401  (fixtures of the real-worker rig)
    N, STRIPE_KEY, record, stripe_base, worker_rig, wrig,
)

pytestmark = pytest.mark.reliability


def publish(broker_url: str, task: str, args: list | None = None, kwargs: dict | None = None) -> str:
    """One raw message, exactly as a frontend without our code would publish it."""
    from kombu import Connection, Exchange, Queue

    task_id = str(uuid.uuid4())
    exchange = Exchange("celery", type="direct")
    with Connection(broker_url) as conn:
        conn.Producer().publish(
            [args or [], kwargs or {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
            exchange=exchange, routing_key="celery", serializer="json",
            headers={"lang": "py", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
                     "group": None, "retries": 0, "eta": None, "expires": None, "origin": "attacker@frontend"},
            declare=[Queue("celery", exchange, routing_key="celery")])
    return task_id


def config(rig, cfg: dict) -> None:
    from tests.support import apply_config

    apply_config(rig.c, cfg)


def book(rig, slots: list[str], **kw) -> str:
    req = booking_request(slots, **kw)
    publish(rig.redis.url, "sessionpack.submit_booking", [req])
    booking_id = booking_id_for(req["request_id"])
    assert rig.settle(booking_id) == "confirmed"
    return booking_id


def shown(rig, booking_id: str) -> dict:
    with rig.c.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), rig.c.settings)


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def refusal_of(rig, task_id: str, timeout: float = 30) -> Activity:
    """The refusal the worker recorded for the message `task_id` (its change key)."""
    def found():
        with rig.c.session_factory() as db:
            return db.execute(select(Activity).where(Activity.action.like("%.refused"))
                              .where(Activity.change_key == task_id)).scalars().first()
    return wait_until(found, timeout, f"the worker to refuse {task_id}")


def applied(rig, booking_id: str, action: str, count: int, timeout: float = 30) -> None:
    def done():
        with rig.c.session_factory() as db:
            return db.query(Activity).filter_by(booking_id=booking_id, action=action).count() >= count
    wait_until(done, timeout, f"{count} {action} of {booking_id}")


def stripe_client(rig):
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": rig.stripe_base}).v1


def later(days: int, hhmm: str = "10:00") -> str:
    """`hhmm` in New York (the test page's zone), `days` from today there."""
    day = datetime.now(ZoneInfo("America/New_York")).date() + timedelta(days=days)
    return iso(local(day.isoformat(), hhmm))


# -- 16.4: the meeting-info link never carries the power to cancel; the owner gets no customer link


def test_abuse_cancel_with_the_meeting_info_token(wrig, results):
    booking_id = book(wrig, daily_slots(datetime.now(timezone.utc) + timedelta(days=3), N),
                      payment_method="pm_card_visa")
    before = shown(wrig, booking_id)
    first = before["sessions"][0]
    info_token = last_segment(first["conferencing_info_url"])  # shared with whoever reads the meeting details
    task_id = publish(wrig.redis.url, "sessionpack.cancel_sessions",
                      kwargs={"session_ids": [first["id"]], "tokens": [info_token]})
    refusal = refusal_of(wrig, task_id)
    wrig.quiesce()
    after = shown(wrig, booking_id)
    harm = ["the session was cancelled"] if after["sessions"][0]["status"] != "confirmed" else []
    harm += [f"refunded {after['refunded']}"] if after["refunded"] != "0.00" else []
    with wrig.c.session_factory() as db:
        owner_mail = [e for e in db.query(OutboxEmail) if e.to_addr != before["customer"]["email"]]
        for e in owner_mail:
            body = e.text_body + e.html_body + json.dumps(e.attachments).replace("\\r\\n ", "")
            if "/manage/" in body or "/meeting/" in body:
                harm.append(f"the owner's {e.kind} carries a customer link")
    problems = wrig.check() + harm
    record(results, "abuse", "cancel", "meeting-info token as manage token (16.4)", injected=1, c=wrig.c,
           booking_ids=[booking_id], problems=problems, expected=["confirmed"])
    assert refusal.details["code"] == "invalid_token" and owner_mail
    assert problems == []


# -- 16.6: a move into a full day is refused like a booking ------------------------------------------


def test_abuse_reschedule_into_a_full_day(wrig, results):
    cfg = package_config(1, price="50.00", provider="zoom",
                         reschedule={"allowed": True, "min_notice_hours": 24, "fee_percent": 0})
    cfg["booking_pages"][0]["event_types"][0]["scheduling"]["max_bookings_per_day"] = 1
    config(wrig, cfg)
    full_day = book(wrig, [later(3)], payment_method="pm_card_visa")
    mover = book(wrig, [later(4)], payment_method="pm_card_visa")
    session = shown(wrig, mover)["sessions"][0]
    target = later(3, "15:00")
    task_id = publish(wrig.redis.url, "sessionpack.reschedule_session",
                      kwargs={"session_id": session["id"], "to": target, "token": last_segment(session["manage_url"])})
    refusal = refusal_of(wrig, task_id)
    wrig.quiesce()
    harm = ["the session moved into the full day"] if shown(wrig, mover)["sessions"][0]["start"] != session["start"] else []
    problems = wrig.check() + harm
    record(results, "abuse", "reschedule", "move into a full day (16.6)", injected=1, c=wrig.c,
           booking_ids=[full_day, mover], problems=problems, expected=["confirmed", "confirmed"])
    assert refusal.details["code"] == "limit_reached"
    assert problems == []


# -- 16.7: cancelling one by one refunds the percentage of the price, rounded once ---------------------


def test_abuse_cancel_one_by_one_refunds_no_extra_cent(wrig, results):
    config(wrig, package_config(3, price="100.00", provider="zoom"))  # 50 % refund, 24 h notice
    booking_id = book(wrig, daily_slots(datetime.now(timezone.utc) + timedelta(days=3), 3),
                      payment_method="pm_card_visa")
    sessions = shown(wrig, booking_id)["sessions"]
    for k, s in enumerate(sessions, start=1):
        publish(wrig.redis.url, "sessionpack.cancel_sessions",
                kwargs={"session_ids": [s["id"]], "tokens": [last_segment(s["manage_url"])]})
        applied(wrig, booking_id, "refund.succeeded", k, timeout=60)
    wrig.quiesce()
    after = shown(wrig, booking_id)
    with wrig.c.session_factory() as db:
        intent = db.execute(text("SELECT intent_id FROM payments WHERE booking_id = :b"), {"b": booking_id}).scalar()
    refunds = sorted(r.amount for r in stripe_client(wrig).refunds.list(
        params={"payment_intent": intent}).auto_paging_iter())
    harm = [] if sum(refunds) == 5000 and after["refunded"] == "50.00" else [
        f"refunded {after['refunded']} ({refunds} at Stripe), not 50.00"]
    problems = wrig.check() + harm
    record(results, "abuse", "cancel", "$100/3 at 50 %, one by one (16.7)", injected=3, c=wrig.c,
           booking_ids=[booking_id], problems=problems, expected=["cancelled"])
    assert problems == []


# -- 16.8: a three-decimal currency reaches Stripe in its own minor units ------------------------------


def test_abuse_three_decimal_currency_charged_in_full(wrig, results):
    cfg = package_config(2, price="10.00", provider="zoom")
    cfg["booking_pages"][0]["event_types"][0]["payment"]["currency"] = "KWD"
    config(wrig, cfg)
    booking_id = book(wrig, daily_slots(datetime.now(timezone.utc) + timedelta(days=3), 2),
                      payment_method="pm_card_visa")
    with wrig.c.session_factory() as db:
        intent = db.execute(text("SELECT intent_id FROM payments WHERE booking_id = :b"), {"b": booking_id}).scalar()
    pi = stripe_client(wrig).payment_intents.retrieve(intent)
    harm = [] if (pi.amount, pi.currency) == (10000, "kwd") else [f"Stripe got {pi.amount} {pi.currency}, not 10000 kwd"]
    problems = wrig.check() + harm
    record(results, "abuse", "authorize", "10.00 KWD, three decimals (16.8)", injected=1, c=wrig.c,
           booking_ids=[booking_id], problems=problems, expected=["confirmed"])
    assert problems == []


# -- 16.9: made-up strings are bounded, refusals of unknown ids stay an index probe ---------------------


def test_abuse_huge_strings_and_a_flood_of_unknown_ids(wrig, results):
    huge = "A" * (2 * 1024 * 1024)
    req = booking_request(daily_slots(datetime.now(timezone.utc) + timedelta(days=3), N), payment_method="pm_card_visa")
    req["customer"]["timezone"] = huge
    publish(wrig.redis.url, "sessionpack.submit_booking", [req])
    flood = [publish(wrig.redis.url, "sessionpack.cancel_sessions",
                     kwargs={"session_ids": ["ss_" + uuid.uuid4().hex[:24]], "admin": False,
                             "tokens": ["ss_x." + "A" * 40]}) for _ in range(50)]
    for task_id in flood[-3:]:
        refusal_of(wrig, task_id, timeout=60)
    wrig.quiesce()
    harm = []
    with wrig.c.engine.connect() as conn:
        longest = max([len(json.dumps(v)) for (v,) in conn.execute(text("SELECT details FROM activity"))]
                      + [len(json.dumps(v)) for (v,) in conn.execute(text("SELECT failure FROM bookings"))] + [0])
        if longest > 10_000:
            harm.append(f"a {longest}-character value was stored")
        # 51 rows are a table PostgreSQL rightly scans; with scans off it must still find an index
        # that answers the look-up (tests/integration/test_refusal_index.py chooses it at 100k).
        conn.execute(text("SET enable_seqscan = off"))
        sql = str(entries_of_change_query(None, flood[0]).compile(
            dialect=wrig.c.engine.dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    if "ix_activity_change_key" not in plan:
        harm.append("a refusal's look-up does not use the index: " + plan.replace("\n", " | "))
    with wrig.c.session_factory() as db:
        harm += ["a booking was made from the huge request"] if db.query(Booking).filter(
            Booking.status == "confirmed").count() else []
        harm += ["a session was cancelled"] if db.query(Session).filter_by(status="cancelled").count() else []
    problems = wrig.check() + harm
    record(results, "abuse", "submit/cancel", "2 MB timezone, 50 unknown ids (16.9)", injected=51, c=wrig.c,
           booking_ids=[], problems=problems, expected=[])
    assert problems == []
