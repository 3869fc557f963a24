"""Manual booking mode (approve, decline, expiry) and per-day / per-week limits."""
from datetime import timedelta

import pytest

from models import Booking, OutboxEmail
from services.booking import approve_booking, decline_booking, expire_approval_requests, submit_booking
from services.booking.views import booking_object
from services.errors import OperationFailed
from services.scheduling import list_slots
from tests.support import on, apply_config, booking_request, daily_slots, drain, iso, local, package_config


def manual_config(per_day=None, per_week=None, mode="manual"):
    cfg = package_config(1)
    et = cfg["booking_pages"][0]["event_types"][0]
    et["scheduling"].update(booking_mode=mode, max_bookings_per_day=per_day, max_bookings_per_week=per_week,
                            approval_expiry_hours=48)
    return cfg


def slots_of(container, *args, **kwargs):
    with container.session_factory() as db:
        return list_slots(db, *args, **kwargs)


def submit(container, slots, **kw):
    booking_id = submit_booking(container, booking_request(slots, **kw))
    drain(container)
    return booking_id


def show(container, booking_id):
    with container.session_factory() as db:
        return booking_object(db, db.get(Booking, booking_id), container.settings)


def email_kinds(container, booking_id):
    with container.session_factory() as db:
        return sorted(e.kind for e in db.query(OutboxEmail).filter_by(booking_id=booking_id))


def test_request_then_approve_confirms_with_a_meeting_and_emails(container, db_backend, clock):
    apply_config(container, manual_config())
    slot = daily_slots(clock() + timedelta(days=2), 1)
    booking_id = submit(container, slot)
    shown = show(container, booking_id)
    assert shown["status"] == "awaiting_approval" and shown["sessions"][0]["conferencing"] is None
    assert email_kinds(container, booking_id) == ["approval_requested_customer", "approval_requested_owner"]
    # the slot is held meanwhile
    assert slot[0] not in slots_of(container, "coach/pkg", slot[0][:10], slot[0][:10], "UTC", now=clock())

    assert approve_booking(container, booking_id) == "pending"
    drain(container)
    shown = show(container, booking_id)
    assert shown["status"] == "confirmed" and shown["sessions"][0]["conferencing"]["join_url"]
    assert "booking_confirmed_customer" in email_kinds(container, booking_id)
    assert approve_booking(container, booking_id) == "confirmed"  # idempotent
    assert "booking.approved" in [a["action"] for a in shown["activity"]]


def test_request_then_decline_frees_the_slot(container, db_backend, clock):
    apply_config(container, manual_config())
    slot = daily_slots(clock() + timedelta(days=2), 1)
    booking_id = submit(container, slot)
    assert decline_booking(container, booking_id, reason="fully booked that week") == "cancelled"
    assert decline_booking(container, booking_id) == "cancelled"  # idempotent
    drain(container)
    shown = show(container, booking_id)
    assert shown["status"] == "cancelled" and shown["failure"]["code"] == "declined"
    assert "booking_declined_customer" in email_kinds(container, booking_id)
    with pytest.raises(OperationFailed) as err:
        approve_booking(container, booking_id)
    assert err.value.code == "not_awaiting_approval"
    assert submit(container, slot, email="other@example.org") and show(container, booking_id)["status"] == "cancelled"
    with container.session_factory() as db:
        assert db.query(Booking).filter_by(status="awaiting_approval").count() == 1


def test_undecided_request_expires(container, clock):
    apply_config(container, manual_config())
    booking_id = submit(container, daily_slots(clock() + timedelta(days=4), 1))
    clock.advance(hours=47)
    assert expire_approval_requests(container) == 0
    clock.advance(hours=2)
    assert expire_approval_requests(container) == 1
    drain(container)
    shown = show(container, booking_id)
    assert shown["status"] == "cancelled" and shown["failure"]["code"] == "approval_expired"
    # both sides are told
    assert email_kinds(container, booking_id) == ["approval_expired_owner", "approval_requested_customer",
                                                  "approval_requested_owner", "booking_declined_customer"]


def test_day_limit_refuses_the_third_booking_and_hides_the_day(container, db_backend, clock):
    apply_config(container, manual_config(per_day=2, mode="automatic"))
    day = (clock() + timedelta(days=3)).date().isoformat()
    times = [iso(local(day, t)) for t in ("09:00", "11:00", "14:00")]
    assert show(container, submit(container, [times[0]]))["status"] == "confirmed"
    free = slots_of(container, "coach/pkg", day, day, None, now=clock())
    assert times[2] in free
    assert show(container, submit(container, [times[1]]))["status"] == "confirmed"
    assert slots_of(container, "coach/pkg", day, day, None, now=clock()) == []
    third = show(container, submit(container, [times[2]]))
    assert third["status"] == "failed" and third["failure"]["code"] == "limit_reached"
    next_day = (clock() + timedelta(days=4)).date().isoformat()
    assert slots_of(container, "coach/pkg", next_day, next_day, None, now=clock())


def test_week_limit_counts_in_the_owners_week(container, clock):
    # 2026-12-06 is a Sunday and 2026-12-07 a Monday (America/New_York). Sunday 23:30 local is
    # already Monday in UTC; it must count for the week that ends on Sunday.
    apply_config(container, manual_config(per_week=1, mode="automatic"))
    sunday_late = iso(local(on("2026-12-06"), "19:00"))
    assert show(container, submit(container, [sunday_late]))["status"] == "confirmed"
    same_week = show(container, submit(container, [iso(local(on("2026-12-05"), "10:00"))]))
    assert same_week["failure"]["code"] == "limit_reached"
    next_week = show(container, submit(container, [iso(local(on("2026-12-07"), "10:00"))]))
    assert next_week["status"] == "confirmed"
    assert slots_of(container, "coach/pkg", on("2026-12-01"), on("2026-12-06"), None, now=clock()) == []
