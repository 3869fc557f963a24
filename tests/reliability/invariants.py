"""What must hold of the whole database (and the peers) once the service has recovered from a fault.

`check_invariants(container)` returns a list of problems, each a sentence naming the booking,
session or object at fault; an empty list means the state is consistent:

- no two active sessions (held or confirmed) of one owner overlap, buffers included;
- every booking is settled (confirmed, failed, cancelled or awaiting_approval), none is pending,
  and its sessions agree with it;
- a meeting row is active exactly for each confirmed session that has conferencing, nothing is
  left `creating`, and (with `provider_peer`) the peer stores exactly our active meetings;
- money: no refund or fee still pending, a confirmed paid booking captured its price once, a failed
  one captured nothing and holds no authorization; with `stripe`, the ledger reconciles with
  Stripe (services.lifecycle.reconcile), and with a Stripe base URL every PaymentIntent at Stripe
  is accounted for (no orphan authorization, no charge the ledger does not know);
- exactly one "we could not book" email for each failed booking of a real page and event type,
  whatever the step it failed at;
- exactly one consolidated confirmation email pair (outbox rows `booking_confirmed_customer` and
  `booking_confirmed_owner`) per booking that was ever confirmed, none for the others;
- no reminder scheduled for a session that is not confirmed, and every scheduled reminder is due
  at its session's (current) start minus its offset.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import select

SETTLED = ("confirmed", "failed", "cancelled", "awaiting_approval")
PEER_PROVIDER = {"ZoomPeer": "zoom", "WebexPeer": "webex", "GoToPeer": "gotomeeting"}


def _aware(dt):
    from datetime import timezone

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def check_invariants(container, stripe=None, provider_peer=None, *, provider_name: str | None = None) -> list[str]:
    """Problems with the state of `container`'s database (see the module docstring); [] when consistent.

    `stripe`: None (no money checks against Stripe), True (reconcile the ledger through a fresh,
    un-faulted StripeGateway on the container's settings), or the Stripe API base URL (reconcile,
    and also list every PaymentIntent there). `provider_peer`: a loopback conferencing peer
    (tests/peers) whose stored meetings must be exactly our active meetings of its provider.
    """
    from models import Activity, Booking, LedgerEntry, Meeting, OutboxEmail, Payment, Reminder, Session

    problems: list[str] = []
    with container.session_factory() as db:
        bookings = {b.id: b for b in db.execute(select(Booking)).scalars()}
        sessions = list(db.execute(select(Session)).scalars())
        meetings = list(db.execute(select(Meeting)).scalars())
        ledger = list(db.execute(select(LedgerEntry)).scalars())
        payments = {p.booking_id: p for p in db.execute(select(Payment)).scalars()}
        reminders = list(db.execute(select(Reminder)).scalars())
        emails = Counter((e.booking_id, e.kind) for e in db.execute(
            select(OutboxEmail.booking_id, OutboxEmail.kind)).all())
        confirmed_events = Counter(b for (b,) in db.execute(
            select(Activity.booking_id).where(Activity.action == "booking.confirmed")).all())

    by_booking: dict[str, list] = defaultdict(list)
    for s in sessions:
        by_booking[s.booking_id].append(s)
    session_by_id = {s.id: s for s in sessions}

    # -- bookings settled, sessions agreeing ---------------------------------------------------------
    for b in bookings.values():
        mine = by_booking.get(b.id, [])
        states = Counter(s.status for s in mine)
        if b.status not in SETTLED:
            problems.append(f"booking {b.id} is stuck {b.status} (saga step {b.saga_step})")
            continue
        if b.status != "awaiting_approval" and b.saga_step != "done":
            problems.append(f"booking {b.id} is {b.status} but its saga step is {b.saga_step}, not done")
        if b.status == "confirmed" and (not states["confirmed"] or set(states) - {"confirmed", "cancelled"}):
            problems.append(f"booking {b.id} is confirmed but its sessions are {dict(states)}")
        if b.status == "cancelled" and set(states) - {"cancelled"}:
            problems.append(f"booking {b.id} is cancelled but its sessions are {dict(states)}")
        if b.status == "failed" and set(states) - {"released"}:
            problems.append(f"booking {b.id} failed but its sessions are {dict(states)} (not all released)")
        if b.status == "awaiting_approval" and set(states) - {"held"}:
            problems.append(f"booking {b.id} awaits approval but its sessions are {dict(states)}")

    # -- no overlapping active sessions per owner (blocks include the buffers) -----------------------
    active: dict[str, list] = defaultdict(list)
    for s in sessions:
        if s.status in ("held", "confirmed"):
            active[s.owner_id].append(s)
    for owner, items in active.items():
        items.sort(key=lambda s: _aware(s.block_start))
        for a, b in zip(items, items[1:]):
            if _aware(b.block_start) < _aware(a.block_end):
                problems.append(f"owner {owner}: sessions {a.id} ({a.booking_id}) and {b.id} ({b.booking_id}) overlap "
                                f"({a.block_start}-{a.block_end} vs {b.block_start}-{b.block_end})")

    # -- meetings exactly for active sessions ----------------------------------------------------------
    meeting_of = {}
    for m in meetings:
        s = session_by_id.get(m.session_id)
        meeting_of[m.session_id] = m
        if m.status == "creating":
            problems.append(f"meeting of session {m.session_id} is still 'creating' (booking {s.booking_id if s else '?'})")
        elif m.status == "active":
            if s is None or s.status != "confirmed":
                problems.append(f"meeting {m.external_id} ({m.provider}) is active but its session {m.session_id} is "
                                f"{s.status if s else 'missing'}")
            if not m.external_id:
                problems.append(f"active meeting of session {m.session_id} has no external id")
    for s in sessions:
        b = bookings.get(s.booking_id)
        provider = ((b.terms or {}).get("conferencing_provider") if b else None) or "none"
        if s.status == "confirmed" and provider != "none":
            m = meeting_of.get(s.id)
            if m is None or m.status != "active":
                problems.append(f"confirmed session {s.id} (booking {s.booking_id}) has no active {provider} meeting")
            elif m.provider != provider:
                problems.append(f"session {s.id}'s meeting is at {m.provider}, its booking's terms say {provider}")
    if provider_peer is not None:
        name = provider_name or getattr(provider_peer, "provider_name", None) or PEER_PROVIDER[type(provider_peer).__name__]
        ours = {m.external_id for m in meetings if m.status == "active" and m.provider == name}
        theirs = {str(k) for k in list(provider_peer.meetings)}
        for orphan in sorted(theirs - ours):
            problems.append(f"{name} keeps meeting {orphan} that no active session of ours has (orphan)")
        for missing in sorted(ours - theirs):
            problems.append(f"our active {name} meeting {missing} does not exist at {name}")

    # -- money ------------------------------------------------------------------------------------------
    entries: dict[str, list] = defaultdict(list)
    for e in ledger:
        entries[e.booking_id].append(e)
        if e.status == "pending" and e.kind in ("refund", "fee"):
            problems.append(f"{e.kind} {e.idempotency_key} of booking {e.booking_id} is still pending")
    for b in bookings.values():
        captures = [e for e in entries.get(b.id, []) if e.kind == "capture" and e.status == "succeeded"]
        payment = payments.get(b.id)
        ever_confirmed = confirmed_events.get(b.id, 0) > 0
        if b.price_cents and ever_confirmed:
            if len(captures) != 1 or captures[0].amount_cents != b.price_cents:
                problems.append(f"booking {b.id} was confirmed for {b.price_cents} cents but its succeeded captures "
                                f"are {[e.amount_cents for e in captures]}")
            if payment is None or payment.status != "captured":
                problems.append(f"booking {b.id} was confirmed but its payment is {payment.status if payment else None}")
        if b.status == "failed":
            if captures:
                problems.append(f"booking {b.id} failed but the ledger has a succeeded capture")
            if payment is not None and payment.status not in ("cancelled",):
                problems.append(f"booking {b.id} failed but its payment is {payment.status} (authorization not cancelled)")
    if stripe:
        problems += _stripe_problems(container, stripe, payments, ledger)

    # -- one consolidated confirmation per confirmed booking ------------------------------------------------
    for b in bookings.values():
        confirmed = confirmed_events.get(b.id, 0)
        if confirmed > 1:
            problems.append(f"booking {b.id} was confirmed {confirmed} times (activity booking.confirmed)")
        if b.status == "confirmed" and not confirmed:
            problems.append(f"booking {b.id} is confirmed without a booking.confirmed activity entry")
        want = 1 if confirmed else 0
        for kind in ("booking_confirmed_customer", "booking_confirmed_owner"):
            if emails.get((b.id, kind), 0) != want:
                problems.append(f"booking {b.id} ({b.status}) has {emails.get((b.id, kind), 0)} {kind} email(s), "
                                f"expected {want}")

    # -- the customer always hears: one "we could not book" per failed booking they can be told about ---------
    for b in bookings.values():
        told = emails.get((b.id, "booking_failed_customer"), 0)
        # A failed booking whose request named a real page and event type (its terms hold their
        # names) is told once; one refused before that (an unknown page, a garbled message) cannot be.
        want = 1 if b.status == "failed" and b.terms else 0
        if told != want:
            problems.append(f"booking {b.id} ({b.status}) has {told} booking_failed_customer email(s), expected {want}")

    # -- reminders only for confirmed sessions, due at the session's current start -------------------------
    for r in reminders:
        if r.status != "scheduled":
            continue
        s = session_by_id.get(r.session_id)
        if s is None or s.status != "confirmed":
            problems.append(f"reminder {r.id} ({r.before_minutes} min) is scheduled for session {r.session_id}, which is "
                            f"{s.status if s else 'missing'}")
        elif _aware(r.due_at) != _aware(s.start_at) - timedelta(minutes=r.before_minutes):
            problems.append(f"reminder {r.id} of session {s.id} is due {r.due_at}, not {r.before_minutes} min before "
                            f"its start {s.start_at}")
    return problems


def _stripe_problems(container, stripe, payments: dict, ledger: list) -> list[str]:
    """The ledger against Stripe, through a gateway of our own (the container's may inject faults)."""
    from services.lifecycle import reconcile
    from services.stripe_gateway import StripeGateway

    problems = []
    clean = SimpleNamespace(session_factory=container.session_factory, read=container.read, payments=StripeGateway(container.settings))
    report = reconcile(clean)
    problems += [f"reconcile: {d['kind']} on {d['booking_id']}: {d['message']}" for d in report["differences"]]
    if isinstance(stripe, str):
        import stripe as stripe_lib

        client = stripe_lib.StripeClient(container.settings.stripe_api_key, base_addresses={"api": stripe})
        known = {e.stripe_object_id for e in ledger if e.status == "succeeded" and e.kind in ("capture", "fee")}
        recorded = {p.intent_id for p in payments.values() if p.intent_id}
        for obj in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
            pi = obj.to_dict()
            meta = pi.get("metadata") or {}
            booking_id, status, amount = meta.get("booking_id"), pi["status"], pi["amount"]
            if status == "requires_capture":
                problems.append(f"Stripe holds an uncaptured authorization {pi['id']} of {amount} cents "
                                f"(booking {booking_id}) that nothing will capture or cancel")
            elif status == "succeeded" and pi["id"] not in known:
                problems.append(f"Stripe took {amount} cents on {pi['id']} (booking {booking_id}) that the ledger "
                                f"does not record")
            if meta.get("kind") == "authorization" and status != "canceled" and pi["id"] not in recorded:
                problems.append(f"authorization {pi['id']} ({status}) of booking {booking_id} is not the booking's "
                                f"recorded payment (a duplicate)")
    return problems
