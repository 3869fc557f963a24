"""Owner calendars against a real Radicale server on loopback: sessions written, moved and
deleted; the calendar's own appointments kept out of availability; outages caught up.

The booking saga is driven in-process through the task outbox (tests/support.drain), with
`sessionpack.sync_calendar` run by `sync_booking`, as the Celery task does. The main write and
outage paths run on both databases.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from models import Activity, Booking, Owner, Session
from services.booking import submit_booking
from services.calendar import CaldavBusySource, check_calendars, sync_booking
from services.calendar.caldav_calendar import CaldavCalendar
from services.errors import OperationFailed, PermanentError, TransientError
from services.scheduling import list_slots
from tests.peers.radicale_server import PASSWORD, USER, RadicaleServer
from tests.support import apply_config, booking_request, daily_slots, drain, iso, local, override_tasks, package_config

SYNC = "sessionpack.sync_calendar"
PASSWORD_ENV = "KIM_CALDAV_PASSWORD"


@pytest.fixture
def radicale(tmp_path):
    with RadicaleServer(tmp_path / "radicale") as server:
        server.make_calendar("work")
        yield server


@pytest.fixture
def sync_failures():
    """Transient sync failures, as the task would see them before retrying."""
    return []


@pytest.fixture
def cal(container, radicale, monkeypatch, sync_failures):
    """The container with owner `kim` connected to the Radicale calendar `work` and a
    5-session package; sync_calendar tasks run through `sync_booking`."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    config = package_config(5)
    config["owners"][0]["calendar"] = {"caldav_url": radicale.calendar_url("work"), "username": USER,
                                       "password_env": PASSWORD_ENV}
    apply_config(container, config)
    container.busy_source = CaldavBusySource(container.settings)

    def run_sync(c, booking_id, retry=True):
        try:
            sync_booking(c, booking_id)
        except TransientError as exc:  # the task retries these with backoff
            sync_failures.append(exc)

    override_tasks(container, {SYNC: run_sync})
    return container


def book(c, slots, on_task=None) -> Booking:
    """Submit and drive a booking; make sure a calendar sync ran after it was confirmed.

    The sync is enqueued here only while confirm_booking does not enqueue it itself yet.
    """
    booking_id = submit_booking(c, booking_request(slots))
    ran = drain(c, on_task=on_task)
    with c.session_factory() as db:
        confirmed = db.get(Booking, booking_id).status == "confirmed"
    if confirmed and SYNC not in ran:
        with c.uow() as uow:
            uow.enqueue(SYNC, booking_id=booking_id)
            uow.commit()
        drain(c)
    with c.session_factory() as db:
        return db.get(Booking, booking_id)


def first_day(clock) -> datetime:
    return clock() + timedelta(days=2)


def by_uid(events) -> dict:
    counts = Counter(str(e["UID"]) for e in events)
    assert all(n == 1 for n in counts.values()), f"duplicate events: {counts}"
    return {str(e["UID"]): e for e in events}


def sessions_of(c, booking_id) -> list[Session]:
    with c.session_factory() as db:
        return list(db.execute(select(Session).where(Session.booking_id == booking_id).order_by(Session.number)).scalars())


def actions(c, booking_id) -> list[Activity]:
    with c.session_factory() as db:
        return list(db.execute(select(Activity).where(Activity.booking_id == booking_id,
                                                      Activity.action.like("calendar.%")).order_by(Activity.id)).scalars())


def change_session(c, session_id, *, move: timedelta | None = None, status: str | None = None) -> None:
    """What a reschedule (new time, raised SEQUENCE) or a cancel does to the session row."""
    with c.uow() as uow:
        s = uow.db.get(Session, session_id)
        if move is not None:
            s.start_at, s.end_at = s.start_at + move, s.end_at + move
            s.block_start, s.block_end = s.block_start + move, s.block_end + move
        if status is not None:
            s.status = status
        s.sequence += 1
        uow.commit()


# -- writing sessions ----------------------------------------------------------------------------


def test_a_five_session_booking_writes_five_events(db_backend, cal, radicale, clock):
    booking = book(cal, daily_slots(first_day(clock), 5))
    assert booking.status == "confirmed"
    events = by_uid(radicale.stored_events("work"))
    sessions = sessions_of(cal, booking.id)
    assert set(events) == {s.uid for s in sessions}
    for s in sessions:
        event = events[s.uid]
        assert event["DTSTART"].dt == s.start_at and event["DTEND"].dt == s.end_at
        assert event["SEQUENCE"] == 0
        description = str(event["DESCRIPTION"])
        assert "/room/" in description and "host=1" in description  # join and host links
    [entry] = actions(cal, booking.id)
    assert entry.action == "calendar.synced" and entry.details["written"] == [1, 2, 3, 4, 5]


def test_a_redelivered_sync_creates_no_duplicate(cal, radicale, clock):
    booking = book(cal, daily_slots(first_day(clock), 5))
    for _ in range(2):
        sync_booking(cal, booking.id)
    assert len(by_uid(radicale.stored_events("work"))) == 5


def test_a_reschedule_moves_one_event(cal, radicale, clock):
    booking = book(cal, daily_slots(first_day(clock), 5))
    moved, *others = sessions_of(cal, booking.id)[1:]
    before = by_uid(radicale.stored_events("work"))
    change_session(cal, moved.id, move=timedelta(days=10, hours=2))
    sync_booking(cal, booking.id)
    after = by_uid(radicale.stored_events("work"))
    assert len(after) == 5
    assert after[moved.uid]["DTSTART"].dt == moved.start_at + timedelta(days=10, hours=2)
    assert after[moved.uid]["SEQUENCE"] == 1
    for s in [sessions_of(cal, booking.id)[0], *others]:
        assert after[s.uid]["DTSTART"].dt == before[s.uid]["DTSTART"].dt


def test_a_cancel_removes_one_event(cal, radicale, clock):
    booking = book(cal, daily_slots(first_day(clock), 5))
    cancelled = sessions_of(cal, booking.id)[2]
    change_session(cal, cancelled.id, status="cancelled")
    assert sync_booking(cal, booking.id) == {"written": [1, 2, 4, 5], "deleted": [3]}
    assert sync_booking(cal, booking.id)["deleted"] == [3]  # already gone (404): done
    events = by_uid(radicale.stored_events("work"))
    assert len(events) == 4 and cancelled.uid not in events


def test_sessions_changed_while_writing_are_written_again(cal, radicale, clock):
    booking = book(cal, daily_slots(first_day(clock), 5))
    moved = sessions_of(cal, booking.id)[0]

    class RescheduledMidway(CaldavCalendar):
        """A reschedule commits while the sync is writing: what it wrote first is stale."""

        changed = False

        def put_event(self, owner, view, session):
            super().put_event(owner, view, session)
            if not self.changed:
                self.changed = True
                change_session(cal, moved.id, move=timedelta(hours=3))

    sync_booking(cal, booking.id, calendar=RescheduledMidway(cal.settings))
    event = by_uid(radicale.stored_events("work"))[moved.uid]
    assert event["DTSTART"].dt == moved.start_at + timedelta(hours=3) and event["SEQUENCE"] == 1


# -- busy times ----------------------------------------------------------------------------------


def appointment(start: datetime, end: datetime, uid: str = "dentist-1") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//owner's app//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{end:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def slots_on(c, day: str) -> list[str]:
    with c.session_factory() as db:
        return list_slots(db, "coach/pkg", day, day, None, now=c.clock(), extra_busy=c.busy_source)


def test_an_appointment_in_the_calendar_is_not_offered_and_cannot_be_booked(cal, radicale, clock):
    day = first_day(clock).date().isoformat()
    radicale.put_event("work", "dentist.ics", appointment(local(day, "10:00"), local(day, "11:00")))
    free = slots_on(cal, day)
    for taken in ("09:30", "10:00", "10:30"):  # 60-minute sessions overlapping 10:00-11:00
        assert iso(local(day, taken)) not in free
    for offered in ("09:00", "11:00"):
        assert iso(local(day, offered)) in free
    slots = daily_slots(first_day(clock), 5)  # the first one is at 10:00 on that day
    booking = book(cal, slots)
    assert booking.status == "failed" and booking.failure["code"] == "slot_unavailable"
    assert [str(e["UID"]) for e in radicale.stored_events("work")] == ["dentist-1"]


def test_our_own_events_are_not_read_back_as_busy_times(cal, radicale, clock):
    book(cal, daily_slots(first_day(clock), 5))
    assert len(radicale.stored_events("work")) == 5
    day = first_day(clock)
    with cal.session_factory() as db:
        busy = cal.busy_source(db.get(Owner, "kim"), day - timedelta(days=1), day + timedelta(days=7))
    assert busy == []  # the sessions are counted from the database, once


def test_an_unreachable_calendar_fails_safe(cal, radicale, clock):
    radicale.stop()
    day = first_day(clock).date().isoformat()
    with pytest.raises(OperationFailed) as err:
        slots_on(cal, day)
    assert err.value.code == "calendar_unavailable" and "kim" in err.value.message
    booking = book(cal, daily_slots(first_day(clock), 5))
    assert booking.status == "failed" and booking.failure["code"] == "calendar_unavailable"


# -- outages and misconfiguration ----------------------------------------------------------------


def test_calendar_down_at_confirmation_the_booking_stays_confirmed_and_catches_up(db_backend, cal, radicale, clock,
                                                                                   sync_failures):
    def stop_before_sync(name, _kwargs):
        # Validation saw the calendar; it goes down before the sync (a free builtin booking is
        # confirmed in its hold's transaction, so the sync is the first task after the pivot).
        if name == SYNC:
            radicale.stop()

    booking = book(cal, daily_slots(first_day(clock), 5), on_task=stop_before_sync)
    assert booking.status == "confirmed"
    assert [e.code for e in sync_failures] == ["calendar_unavailable"]
    [failed] = actions(cal, booking.id)
    assert failed.action == "calendar.sync_failed" and failed.details["code"] == "calendar_unavailable"
    doctor = {e["name"]: e for e in check_calendars(cal)}
    assert not doctor["calendar kim"]["ok"] and not doctor["calendar sync"]["ok"]
    assert booking.id in doctor["calendar sync"]["detail"]

    radicale.start()
    sync_booking(cal, booking.id)  # the task's retry
    assert len(by_uid(radicale.stored_events("work"))) == 5
    with cal.session_factory() as db:
        assert db.get(Booking, booking.id).status == "confirmed"
    assert [a.action for a in actions(cal, booking.id)] == ["calendar.sync_failed", "calendar.synced"]
    assert all(entry["ok"] for entry in check_calendars(cal))


def book_while_the_calendar_goes_down(c, radicale, clock, day_offset: int = 0) -> Booking:
    """A booking confirmed while the (running) calendar went down before its sync: the sync failed."""
    def stop_before_sync(name, _kwargs):
        if name == SYNC:
            radicale.stop()

    booking = book(c, daily_slots(first_day(clock) + timedelta(days=day_offset), 5), on_task=stop_before_sync)
    assert booking.status == "confirmed" and actions(c, booking.id)[-1].action == "calendar.sync_failed"
    return booking


def test_after_the_sync_task_gives_up_beat_syncs_again_once_the_calendar_is_back(db_backend, cal, radicale, clock,
                                                                                   monkeypatch):
    import tasks.calendar
    from services.calendar.resync import resync_calendars
    from core.wiring import set_container

    booking = book_while_the_calendar_goes_down(cal, radicale, clock)
    # The task's own retries, run until it gives up (fewer and without waiting, same decision).
    monkeypatch.setattr(tasks.calendar, "SYNC_MAX_RETRIES", 3)
    monkeypatch.setattr(tasks.calendar, "backoff", lambda *args, **kwargs: 0)
    set_container(cal)
    try:
        assert tasks.calendar.sync_calendar.apply(kwargs={"booking_id": booking.id}).failed()
    finally:
        set_container(None)
    assert [a.action for a in actions(cal, booking.id)] == ["calendar.sync_failed"] * 5
    sync = {e["name"]: e for e in check_calendars(cal)}["calendar sync"]
    assert not sync["ok"] and booking.id in sync["detail"]

    radicale.start()
    assert resync_calendars(cal) == {"failing": 1, "queued": 0}  # the latest failure is too recent
    clock.advance(minutes=16)
    assert resync_calendars(cal) == {"failing": 1, "queued": 1}
    assert drain(cal) == [SYNC]
    assert len(by_uid(radicale.stored_events("work"))) == 5
    assert [a.action for a in actions(cal, booking.id)][-2:] == ["calendar.resync_requested", "calendar.synced"]
    assert all(entry["ok"] for entry in check_calendars(cal))
    clock.advance(hours=2)
    assert resync_calendars(cal) == {"failing": 0, "queued": 0}


def test_resyncs_wait_longer_each_time_are_bounded_per_tick_and_stop_after_the_bound(cal, radicale, clock,
                                                                                     sync_failures):
    from services.calendar.resync import resync_calendars

    one = book_while_the_calendar_goes_down(cal, radicale, clock)
    radicale.start()
    two = book_while_the_calendar_goes_down(cal, radicale, clock, day_offset=7)
    start = clock.now

    def sweep_at(minutes: float, limit: int = 50) -> dict:
        clock.now = start + timedelta(minutes=minutes)
        result = resync_calendars(cal, limit=limit)
        drain(cal)  # the re-syncs run once each and fail: the calendar is still down
        return result

    assert sweep_at(10) == {"failing": 2, "queued": 0}
    assert sweep_at(16, limit=1) == {"failing": 2, "queued": 1}  # at most `limit` per tick
    assert sweep_at(17) == {"failing": 2, "queued": 1}
    assert len(sync_failures) == 2 + 2  # one try per re-sync, no retries
    # The waits double, counted from each booking's latest re-sync (entries carry the clock's
    # time): 30 minutes before the second re-sync, an hour before the third, ...
    last_one, last_two = 16, 17
    for wait in (30, 60, 120):
        assert sweep_at(last_one + wait - 1)["queued"] == 0
        assert sweep_at(last_two + wait)["queued"] == 2
        last_one = last_two = last_two + wait
    requested = [a.details["attempt"] for a in actions(cal, one.id) if a.action == "calendar.resync_requested"]
    assert requested == [1, 2, 3, 4]
    # Seven days after the first failure the sweep stops; doctor keeps listing both.
    assert sweep_at(7 * 24 * 60 - 5)["queued"] == 2
    assert sweep_at(7 * 24 * 60 + 5) == {"failing": 2, "queued": 0}  # their last failure is recent
    assert sweep_at(7 * 24 * 60 + 30) == {"failing": 2, "queued": 0}
    sync = {e["name"]: e for e in check_calendars(cal)}["calendar sync"]
    assert not sync["ok"] and one.id in sync["detail"] and two.id in sync["detail"]


def test_a_missing_password_variable_is_reported_not_retried(cal, radicale, clock, monkeypatch):
    booking = book(cal, daily_slots(first_day(clock), 5))
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(PermanentError) as err:
        sync_booking(cal, booking.id)
    assert err.value.code == "calendar_password_missing" and PASSWORD_ENV in err.value.message
    assert actions(cal, booking.id)[-1].details["code"] == "calendar_password_missing"
    [owner_check] = [e for e in check_calendars(cal) if e["name"] == "calendar kim"]
    assert not owner_check["ok"] and PASSWORD_ENV in owner_check["detail"]


def test_owners_without_a_calendar_are_left_alone(container, clock):
    apply_config(container, package_config(2))
    booking_id = submit_booking(container, booking_request(daily_slots(first_day(clock), 2)))
    drain(container)
    assert sync_booking(container, booking_id, calendar=CaldavCalendar(container.settings)) is None
    assert actions(container, booking_id) == [] and check_calendars(container) == []


def test_the_task_is_registered():
    import tasks  # noqa: F401
    from worker.app import app

    assert "sessionpack.sync_calendar" in app.tasks
