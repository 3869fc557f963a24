"""Data for the owner console's tests: two owners with a page each, and bookings written
straight into the tables (the stream, the ledger), without running the booking workflow."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from models import Activity, Booking, LedgerEntry, Session

WEEK = {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def two_owners_config() -> dict:
    def page(slug, owner, name):
        return {"slug": slug, "owner": owner, "name": name, "timezone": "America/New_York", "availability": {"weekly": WEEK},
                "event_types": [
                    {"slug": "pkg", "name": "Coaching, 3 sessions", "duration_minutes": 60,
                     "scheduling": {"sessions_per_booking": 3}, "conferencing": {"provider": "none"},
                     "payment": {"price": "300.00", "currency": "USD"}},
                    {"slug": "intro", "name": "Intro call", "duration_minutes": 30, "conferencing": {"provider": "none"}},
                ]}
    return {
        "owners": [{"id": "kim", "name": "Kim Coach", "email": "kim@example.com", "timezone": "America/New_York"},
                   {"id": "lee", "name": "Lee Tutor", "email": "lee@example.com", "timezone": "Europe/Berlin"}],
        "booking_pages": [page("kim-page", "kim", "Coaching with Kim"), page("lee-page", "lee", "Tutoring with Lee")],
    }


def event_type_id(db, page: str, slug: str) -> int:
    from models import EventType

    return db.query(EventType.id).filter_by(page_slug=page, slug=slug).scalar()


def add_booking(db, booking_id: str, *, page: str, owner: str, event_type: str = "pkg", email: str = "sam@example.org",
                at: datetime, sessions: int = 3, status: str = "confirmed", price_cents: int = 30000,
                captured: int | None = None, refunds: tuple[int, ...] = (), fees: tuple[int, ...] = (),
                pending_refunds: tuple[int, ...] = ()) -> Booking:
    """A booking of `sessions` sessions starting a week after `at`, its activity entries at `at`
    (+1 s per entry), and its ledger rows (captured defaults to the price)."""
    et_id = event_type_id(db, page, event_type)
    b = Booking(id=booking_id, request_id=f"req-{booking_id}", status=status, saga_step="done", page_slug=page,
                event_type_id=et_id, owner_id=owner, event_type_slug=event_type, customer_name="Sam Lee",
                customer_email=email, customer_timezone="Europe/Berlin", price_cents=price_cents, currency="USD",
                terms={"event_name": "Coaching" if event_type == "pkg" else "Intro call", "page_name": page,
                       "duration_minutes": 60, "policies": {}}, created_at=at, updated_at=at)
    db.add(b)
    db.flush()
    entries = [Activity(at=at, booking_id=booking_id, action="booking.confirmed", details={"sessions": sessions})]
    for n in range(1, sessions + 1):
        start = at + timedelta(days=7 + n)
        sid = f"{booking_id}-s{n}"
        db.add(Session(id=sid, booking_id=booking_id, number=n, owner_id=owner,
                       status="cancelled" if status == "cancelled" else "confirmed", start_at=start,
                       end_at=start + timedelta(hours=1), block_start=start, block_end=start + timedelta(hours=1),
                       relative_cost_cents=price_cents // sessions, uid=f"{sid}@test"))
        entries.append(Activity(at=at + timedelta(seconds=n), booking_id=booking_id, session_id=sid,
                                action="session.confirmed", details={"number": n}))
    db.add_all(entries)
    money = [("capture", price_cents if captured is None else captured, "succeeded")]
    money += [("fee", f, "succeeded") for f in fees] + [("refund", r, "succeeded") for r in refunds]
    money += [("refund", r, "pending") for r in pending_refunds]
    for i, (kind, amount, state) in enumerate(money):
        if amount:
            db.add(LedgerEntry(booking_id=booking_id, kind=kind, amount_cents=amount, currency="USD", status=state,
                               stripe_object_id=f"obj_{booking_id}_{i}", idempotency_key=f"{booking_id}-{kind}-{i}",
                               created_at=at + timedelta(minutes=i), updated_at=at + timedelta(minutes=i)))
    db.flush()
    return b


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
