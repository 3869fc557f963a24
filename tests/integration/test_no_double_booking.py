"""Double booking is impossible: by the database on PostgreSQL, by the write lock on SQLite."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from models import Booking, Session
from services.booking import submit_booking
from tests.support import apply_config, booking_request, drain, iso, local, on, package_config


def _session(booking_id, start, minutes=60, sid=None):
    return Session(id=sid or f"ss_{booking_id}", booking_id=booking_id, number=1, owner_id="kim", status="confirmed",
                   start_at=start, end_at=start + timedelta(minutes=minutes), block_start=start,
                   block_end=start + timedelta(minutes=minutes + 15), relative_cost_cents=0, uid=f"{booking_id}@t")


def _booking(booking_id):
    return Booking(id=booking_id, request_id=booking_id, status="confirmed", owner_id="kim", customer_name="x",
                   customer_email="x@example.org", customer_timezone="UTC", terms={})


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_postgres_refuses_overlap_from_two_concurrent_transactions(container, db_backend):
    apply_config(container, package_config(1))
    start = local(on("2026-12-07"), "10:00")
    first_written = threading.Event()
    outcomes = {}

    def first():
        with container.session_factory() as db:
            db.add(_booking("bk_a"))
            db.flush()
            db.add(_session("bk_a", start))
            db.flush()
            first_written.set()
            time.sleep(0.5)  # the second transaction is now waiting on our uncommitted row
            db.commit()
            outcomes["bk_a"] = "committed"

    def second():
        first_written.wait(10)
        with container.session_factory() as db:
            db.add(_booking("bk_b"))
            db.flush()
            db.add(_session("bk_b", start + timedelta(minutes=30)))
            try:
                db.commit()
                outcomes["bk_b"] = "committed"
            except IntegrityError as exc:
                outcomes["bk_b"] = "refused: " + type(exc.orig).__name__

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert outcomes == {"bk_a": "committed", "bk_b": "refused: ExclusionViolation"}
    with container.session_factory() as db:
        assert db.query(Session).count() == 1


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_buffer_counts_for_the_constraint(container, db_backend):
    apply_config(container, package_config(1))
    start = local(on("2026-12-07"), "10:00")
    with container.session_factory() as db:
        db.add_all([_booking("bk_a"), _booking("bk_b")])
        db.flush()
        db.add(_session("bk_a", start))
        db.commit()
        db.add(_session("bk_b", start + timedelta(minutes=70)))  # inside the first one's 15-minute buffer
        with pytest.raises(IntegrityError):
            db.commit()


def test_fifty_concurrent_requests_for_overlapping_slots(container, db_backend, clock):
    """Every request wants 2 sessions; each shares one slot with the others. Exactly one wins each
    contested slot; the losers fail with slot_unavailable and hold nothing."""
    apply_config(container, package_config(2))
    day = (clock() + timedelta(days=3)).date().isoformat()
    contested = [iso(local(day, f"{h:02d}:00")) for h in (9, 11, 13, 15, 17)]
    requests = []
    for i in range(50):
        own = iso(local((clock() + timedelta(days=10 + i)).date().isoformat(), "10:00"))
        requests.append(booking_request(sorted([contested[i % 5], own]), request_id=f"race-{i}"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda r: submit_booking(container, r), requests))
    drain(container)
    with container.session_factory() as db:
        bookings = [db.get(Booking, i) for i in ids]
        winners = [b for b in bookings if b.status == "confirmed"]
        losers = [b for b in bookings if b.status == "failed"]
        assert len(winners) == 5 and len(losers) == 45
        assert all(b.failure["code"] == "slot_unavailable" for b in losers)
        assert all(not b.sessions or all(s.status == "released" for s in b.sessions) for b in losers)
        active = db.query(Session).filter(Session.status.in_(["held", "confirmed"])).order_by(Session.block_start).all()
        assert len(active) == 10
        for a, b in zip(active, active[1:]):
            assert a.block_end <= b.block_start
