"""Soak: 300 bookings of 1 to 10 sessions with random faults on every peer (10 % of calls, transient
and permanent, seeded), random cancels, reschedules and refunds by customers (manage tokens) and
admins, driven in-process through the task outbox with the tasks' retry decisions. The invariants
hold at the end, money reconciles with localstripe, and no booking failed without a reason.
"""
from __future__ import annotations

import functools

import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from models import Booking, LedgerEntry, OutboxEmail, Session
from services import lifecycle
from services.booking.ids import booking_id_for
from services.devtools.localstripe import reset, running_localstripe
from services.notifications import outbox
from services.tokens import make_token
from tests.peers.zoom import ZoomPeer
from tests.support import START, Clock, apply_config, iso, local

from .harness import Faults, RunStats, inject, public_change, run_tasks, submit
from .invariants import check_invariants

SEED = 20261130
BOOKINGS = 300
STRIPE_KEY = "sk_test_sessionpack_soak"
OWNERS = ("ana", "ben", "cam", "dee")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONE = "America/New_York"

# 10 % of the calls to each peer fail: transient before the call (a 5xx), transient after it
# (the peer acted, the answer was lost) and, where a refusal is a real answer, permanent.
FORWARD = {"permanent": 0.03, "before": 0.04, "after": 0.03}
TRANSIENT = {"before": 0.05, "after": 0.05}
RATES = {
    "stripe.authorize": FORWARD, "stripe.capture": FORWARD, "stripe.charge_off_session": FORWARD,
    "stripe.refund": {"permanent": 0.02, "before": 0.04, "after": 0.04},
    "stripe.cancel_authorization": TRANSIENT, "stripe.find_refund": {"before": 0.1},
    "stripe.find_charge": {"before": 0.1}, "stripe.find_authorization": {"before": 0.1},
    "stripe.intent_summary": {"before": 0.1},
    "builtin.create": {"permanent": 0.01, "before": 0.05, "after": 0.04}, "zoom.create": FORWARD,
    **{f"{p}.{m}": TRANSIENT for p in ("builtin", "zoom") for m in ("update", "delete")},
    "zoom.find": {"before": 0.1},
    "email.send": {"permanent": 0.02, "before": 0.05, "after": 0.03},
}
# What may fail a booking for good: a permanent answer from a peer on the way forward.
FORWARD_PERMANENT = ("stripe.authorize:permanent", "stripe.capture:permanent", "builtin.create:permanent",
                     "zoom.create:permanent")


def soak_config() -> dict:
    """Four owners, each with a page of event types: free builtin packages of 1..10 sessions,
    paid ones (prices that do not split evenly) and Zoom ones."""
    def event_type(slug, n, provider="builtin", price=None):
        et = {"slug": slug, "name": f"{slug} ({n} sessions)", "duration_minutes": 60,
              "scheduling": {"sessions_per_booking": n, "min_notice_minutes": 60, "buffer_after_minutes": 15,
                             "slot_interval_minutes": 30},
              "conferencing": {"provider": provider},
              "policies": {"cancel": {"allowed": True, "min_notice_hours": 24, "refund_percent": 50},
                           "reschedule": {"allowed": True, "min_notice_hours": 24, "fee_percent": 10}},
              "reminders": [{"before_minutes": 1440}, {"before_minutes": 60, "notify_owner": True}]}
        if price:
            et["payment"] = {"price": price, "currency": "USD"}
        return et

    types = [event_type(f"s{n}", n) for n in range(1, 11)]
    types += [event_type(f"paid{n}", n, price=price) for n, price in ((1, "40.00"), (3, "100.00"), (5, "99.99"))]
    types += [event_type(f"zoom{n}", n, provider="zoom") for n in (2, 4)]
    return {
        "owners": [{"id": o, "name": f"Coach {o.title()}", "email": f"{o}@example.com", "timezone": ZONE} for o in OWNERS],
        "booking_pages": [{"slug": o, "owner": o, "name": f"Coaching with {o.title()}", "timezone": ZONE,
                           "availability": {"weekly": {d: [["08:00", "20:00"]] for d in WEEKDAYS}},
                           "event_types": types} for o in OWNERS],
    }


class Calendar:
    """Which start times look free per owner (read back from the database), to pick mostly free
    slots and now and then a taken one on purpose."""

    def __init__(self, c, rng: random.Random, today):
        self.c, self.rng, self.today = c, rng, today

    def busy(self, owner: str) -> list[tuple[datetime, datetime]]:
        with self.c.session_factory() as db:
            rows = db.execute(select(Session.block_start, Session.block_end).where(
                Session.owner_id == owner, Session.status.in_(("held", "confirmed")))).all()
        return [(s.replace(tzinfo=timezone.utc) if s.tzinfo is None else s,
                 e.replace(tzinfo=timezone.utc) if e.tzinfo is None else e) for s, e in rows]

    def pick(self, owner: str, n: int, *, clash: bool = False) -> list[str]:
        busy = self.busy(owner)
        days = self.rng.sample(range(3, 150), n)
        chosen = []
        for day in days:
            for _ in range(30):
                minutes = self.rng.randrange(8 * 60, 18 * 60 + 1, 30)
                day_text = (self.today + timedelta(days=day)).isoformat()
                start = local(day_text, f"{minutes // 60:02d}:{minutes % 60:02d}", ZONE)
                block = (start, start + timedelta(minutes=75))
                if not any(block[0] < e and s < block[1] for s, e in busy):
                    break
            chosen.append(start)
            busy.append(block)
        if clash and self.busy(owner):
            taken = self.rng.choice(self.busy(owner))[0]
            chosen[0] = taken
        return [iso(s) for s in chosen]


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as url:
        yield url


def test_soak_300_bookings_with_random_faults(tmp_path, stripe_base, results):
    """Which call gets which fault follows from SEED and the call's identity (an idempotency key,
    a meeting's booking and number, a message id); what a package's parallel meeting creation
    does after a failure (cancelling the creates not started yet) depends on timing, so two runs
    agree on the faults of every call they both make, not necessarily on every call."""
    from models.db import migrate
    from tests.conftest import make_settings
    from core.wiring import build_container

    started = time.monotonic()
    rng = random.Random(SEED)
    reset(stripe_base)
    clock = Clock(START)
    with ZoomPeer() as zoom:
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'var' / 'soak.db'}")
        settings = zoom.settings(**{k: getattr(settings, k) for k in (
            "var_dir", "database_url", "broker_url", "secret_key", "public_base_url")}).replace(
            stripe_api_key=STRIPE_KEY, stripe_api_base=stripe_base,
            extra={"http_retry": {"attempts": 2, "base_delay": 0.001, "max_delay": 0.002}})
        c = build_container(settings, clock=clock)
        migrate(c.engine)
        apply_config(c, soak_config())
        faults = Faults(seed=SEED, rates=RATES)
        sender = inject(c, faults)
        calendar = Calendar(c, rng, clock().date())
        stats = RunStats()
        run = lambda: run_tasks(c, stats=stats)  # noqa: E731

        submitted: list[dict] = []
        deliberate_failures = 0
        changes: Counter = Counter()
        refusals: Counter = Counter()
        forged_refused = 0
        for number in range(BOOKINGS):
            kind = rng.choices(("free", "paid", "zoom"), weights=(70, 20, 10))[0]
            owner = rng.choice(OWNERS)
            n, event_type = {
                "free": lambda: (k := rng.randint(1, 10), f"s{k}"),
                "paid": lambda: (k := rng.choice((1, 3, 5)), f"paid{k}"),
                "zoom": lambda: (k := rng.choice((2, 4)), f"zoom{k}"),
            }[kind]()
            clash = rng.random() < 0.05
            deliberate_failures += clash
            request = {
                "request_id": f"soak-{number}", "booking_page": owner, "event_type": event_type,
                "customer": {"name": f"Customer {number}", "email": f"customer{number % 120}@example.org",
                             "timezone": "Europe/Berlin"},
                "slots": calendar.pick(owner, n, clash=clash),
            }
            if kind == "paid":
                request["payment_method"] = "pm_card_chargeCustomerFail" if rng.random() < 0.03 else "pm_card_visa"
                deliberate_failures += request["payment_method"] == "pm_card_chargeCustomerFail"
            booking_id = submit(c, request)
            assert booking_id == booking_id_for(request["request_id"])
            submitted.append(request)
            run()
            if rng.random() < 0.03:  # a frontend enqueues the same request again: nothing changes
                again = rng.choice(submitted)
                assert submit(c, again) == booking_id_for(again["request_id"])
                run()

            # -- random lifecycle changes on some confirmed booking ----------------------------------
            if rng.random() < 0.3:
                target = _random_confirmed(c, rng)
                if target is not None:
                    result = _random_change(c, rng, target, calendar, changes)
                    if "error" in result:
                        refusals[result["error"]["code"]] += 1
                    run()
            if rng.random() < 0.03:  # a forged or swapped token is refused and changes nothing
                target = _random_confirmed(c, rng)
                if target is not None:
                    forged_refused += _forged_cancel_is_refused(c, rng, target)
                    run()

        # Recovery: emails that hit a transient failure are retried by the sweep, later.
        faults.enabled = False
        clock.advance(hours=2)
        outbox.deliver(c, None)
        run()
        problems = check_invariants(c, stripe=stripe_base, provider_peer=zoom)

        with c.session_factory() as db:
            statuses = Counter(b.status for b in db.execute(select(Booking)).scalars())
            failed = [b.failure for b in db.execute(select(Booking).where(Booking.status == "failed")).scalars()]
            unsent = db.execute(select(OutboxEmail.status, OutboxEmail.last_error).where(
                OutboxEmail.status.not_in(("sent", "failed")))).all()
            email_failed = db.execute(select(OutboxEmail.id).where(OutboxEmail.status == "failed")).all()
            refunds = Counter(e.status for e in db.execute(
                select(LedgerEntry).where(LedgerEntry.kind == "refund")).scalars())
            sent_rows = db.execute(select(OutboxEmail.id).where(OutboxEmail.status == "sent")).all()
        delivered = list(settings.outbox_dir.glob("*.eml"))
    elapsed = time.monotonic() - started

    forward_failures = [f for f in failed if f["step"] != "validate"]
    permanent_forward = sum(faults.injected[k] for k in FORWARD_PERMANENT)
    final = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
    results.append(_result(faults, len(submitted), not problems and not unsent, 0, final, problems))
    print(f"\nsoak: {len(submitted)} bookings in {elapsed:.1f}s: {final}; {faults.total} faults injected "
          f"({dict(faults.injected)}); changes {dict(changes)}; refusals {dict(refusals)}; refunds {dict(refunds)}")

    assert problems == []
    assert sum(statuses.values()) == BOOKINGS and statuses["pending"] == 0
    assert statuses["confirmed"] + statuses["cancelled"] > BOOKINGS // 2
    # Every email was delivered, or refused for good by an injected permanent answer (and only those).
    assert unsent == []
    assert len(email_failed) == faults.injected["email.send:permanent"]
    # Delivered once each: a resend after a lost answer finds the message already there.
    assert len(delivered) == len(sent_rows)
    assert sum(n - 1 for n in sender.sent.values()) <= faults.injected["email.send:after"]
    # A booking fails only for a reason: a slot taken (validate), a declined card, or a permanent
    # answer injected on the way forward; transient faults never fail one.
    assert len(forward_failures) <= permanent_forward + deliberate_failures
    assert {f["step"] for f in failed} <= {"validate", "authorize", "conferencing", "capture"}
    # A task gives up only on a permanent refusal injected into it (a refund Stripe refused).
    assert set(stats.failed_tasks) <= {("sessionpack.send_refunds", "stripe_refused")}, stats.failed_tasks
    assert len(stats.failed_tasks) <= faults.injected["stripe.refund:permanent"]
    assert sum(stats.retries.values()) > 0
    kinds = {key.rsplit(":", 1)[1] for key in faults.injected}
    assert faults.total >= 100 and kinds == {"permanent", "before", "after"}
    assert sum(n for key, n in faults.injected.items() if key.startswith("stripe.")) >= 5
    assert changes["cancel"] and changes["reschedule"] and forged_refused
    assert elapsed < 150


def _result(faults, bookings, consistent, lost, final, problems):
    from .conftest import CaseResult

    return CaseResult("soak", "all", "random 10 %", injected=faults.total, bookings=bookings, consistent=consistent,
                      lost=lost, final=final, problems=problems)


def _random_confirmed(c, rng) -> Booking | None:
    with c.session_factory() as db:
        ids = [b for (b,) in db.execute(select(Booking.id).where(Booking.status == "confirmed"))]
        if not ids:
            return None
        booking = db.get(Booking, rng.choice(ids))
        booking.sessions  # noqa: B018 - load them
        return booking


def _key(rng) -> str:
    """A change key from the seeded generator: the change's emails and money keys follow from it."""
    return f"chg-{rng.getrandbits(64):016x}"


def _token(c, session_id: str) -> str:
    return make_token(c.settings.secret_key, session_id)


def _random_change(c, rng, booking: Booking, calendar: Calendar, changes: Counter) -> dict:
    def change(fn, **kwargs) -> dict:
        return public_change(c, fn, key=_key(rng), **kwargs)

    live = [s for s in booking.sessions if s.status == "confirmed"]
    roll = rng.random()
    if roll < 0.35:  # the customer cancels some sessions with their tokens
        chosen = rng.sample(live, rng.randint(1, min(3, len(live))))
        changes["cancel"] += 1
        return change(lifecycle.cancel_sessions, session_ids=[s.id for s in chosen],
                      tokens=[_token(c, s.id) for s in chosen], reason="soak")
    if roll < 0.5:  # the admin cancels, with or without the refund
        chosen = rng.sample(live, rng.randint(1, len(live)))
        changes["cancel"] += 1
        return change(lifecycle.cancel_sessions, session_ids=[s.id for s in chosen], admin=True,
                      refund=rng.random() < 0.5)
    if roll < 0.85:  # a reschedule, mostly to a free time, by the customer (with a fee) or the admin
        session = rng.choice(live)
        to = calendar.pick(booking.owner_id, 1, clash=rng.random() < 0.1)[0]
        changes["reschedule"] += 1
        who = {"token": _token(c, session.id)} if rng.random() < 0.7 else {"admin": True}
        give_up = functools.partial(lifecycle.give_up_reschedule, session_id=session.id, **who)
        return change(lifecycle.reschedule_session, give_up=give_up, session_id=session.id, new_start_iso=to, **who)
    if booking.price_cents:  # a manual refund of part of what is still refundable
        changes["refund"] += 1
        cents = rng.randint(1, max(1, booking.price_cents // 4))
        return change(lifecycle.refund_booking, booking_id=booking.id, amount_text=f"{cents / 100:.2f}", admin=True,
                      reason="goodwill")
    return {}


def _forged_cancel_is_refused(c, rng, booking: Booking) -> int:
    live = [s for s in booking.sessions if s.status == "confirmed"]
    victim = rng.choice(live)
    other = rng.choice(booking.sessions)
    forged = [victim.id + "." + "A" * 43, _token(c, other.id) if other.id != victim.id else "ss_x.y",
              _token(c, victim.id)[:-1] + ("A" if _token(c, victim.id)[-1] != "A" else "B")]
    result = public_change(c, lifecycle.cancel_sessions, key=_key(rng), session_ids=[victim.id],
                           tokens=[rng.choice(forged)])
    assert result.get("error", {}).get("code") == "invalid_token", result
    with c.session_factory() as db:
        assert db.get(Session, victim.id).status == "confirmed"
    return 1
