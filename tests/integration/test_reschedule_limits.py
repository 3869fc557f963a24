"""A reschedule meets the event type's per-day and per-week limits exactly as a booking would:
a move into a full day or week is refused with `limit_reached` and nothing changes; a move
within the session's own day or week is not counted against itself. Both databases."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from models import Activity
from services import lifecycle
from services.errors import OperationFailed
from services.tokens import make_manage_token
from tests.integration.test_approval import manual_config, show, slots_of, submit
from tests.support import apply_config, iso, local

pytestmark = pytest.mark.integration


def move(c, session_id, to, **auth):
    if not auth:
        auth = {"token": make_manage_token(c.settings.secret_key, session_id)}
    return lifecycle.reschedule_session(c, session_id, to, change_key=uuid.uuid4().hex, **auth)


def limited(container, **limits):
    cfg = manual_config(mode="automatic", **limits)
    et = cfg["booking_pages"][0]["event_types"][0]
    et["policies"]["reschedule"] = {"allowed": True, "min_notice_hours": 24, "fee_percent": 0}
    return cfg


def day_of(clock, days: int) -> str:
    return (clock() + timedelta(days=days)).date().isoformat()


def refused_move(c, session_id, to, **auth) -> OperationFailed:
    with pytest.raises(OperationFailed) as err:
        move(c, session_id, to, **auth)
    return err.value


@pytest.mark.parametrize("who", ["customer", "admin"])
def test_a_move_into_a_full_day_is_refused_like_a_booking(container, db_backend, clock, who):
    apply_config(container, limited(container, per_day=1))
    day1, day2 = day_of(clock, 3), day_of(clock, 4)
    first = show(container, submit(container, [iso(local(day1, "09:00"))]))
    second = show(container, submit(container, [iso(local(day2, "09:00"))]))
    assert first["status"] == second["status"] == "confirmed"
    auth = {"admin": True} if who == "admin" else {}
    target = iso(local(day1, "14:00"))
    # a new booking there is refused; so is the move
    assert show(container, submit(container, [target]))["failure"]["code"] == "limit_reached"
    err = refused_move(container, second["sessions"][0]["id"], target, **auth)
    assert err.code == "limit_reached" and "max_bookings_per_day" in err.message and "moved there" in err.message
    after = show(container, second["id"])
    assert after["sessions"][0]["start"] == second["sessions"][0]["start"]
    with container.session_factory() as db:
        assert db.query(Activity).filter_by(action="reschedule.refused").count() == 1
        assert db.query(Activity).filter_by(action="session.rescheduled").count() == 0
    # within its own day the session does not count against itself
    own_day = iso(local(day2, "15:00"))
    move(container, second["sessions"][0]["id"], own_day, **auth)
    assert show(container, second["id"])["sessions"][0]["start"] == own_day
    # once the first booking's day is freed by moving it away, the day takes the other one
    move(container, first["sessions"][0]["id"], iso(local(day_of(clock, 6), "10:00")), **auth)
    move(container, second["sessions"][0]["id"], target, **auth)
    assert show(container, second["id"])["sessions"][0]["start"] == target
    assert slots_of(container, "coach/pkg", day1, day1, None, now=clock()) == []


def test_a_move_into_a_full_week_is_refused(container, db_backend, clock):
    apply_config(container, limited(container, per_week=1))
    # two Mondays (the owner's ISO weeks), far enough ahead for every notice
    today = clock().date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    week1, week2 = monday.isoformat(), (monday + timedelta(days=7)).isoformat()
    first = show(container, submit(container, [iso(local(week1, "10:00"))]))
    second = show(container, submit(container, [iso(local(week2, "10:00"))]))
    assert first["status"] == second["status"] == "confirmed"
    wednesday_week1 = iso(local((monday + timedelta(days=2)).isoformat(), "10:00"))
    err = refused_move(container, second["sessions"][0]["id"], wednesday_week1)
    assert err.code == "limit_reached" and "max_bookings_per_week" in err.message
    assert show(container, second["id"])["sessions"][0]["start"] == second["sessions"][0]["start"]
    friday_week2 = iso(local((monday + timedelta(days=11)).isoformat(), "10:00"))
    move(container, second["sessions"][0]["id"], friday_week2)
    assert show(container, second["id"])["sessions"][0]["start"] == friday_week2
