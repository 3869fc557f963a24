"""When beat syncs a booking's calendar again (services/calendar/resync.py), from its calendar
entries since the latest successful sync; no I/O."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from services.calendar.resync import RESYNC_REQUESTED, resync_due, resync_wait

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
BASE, BOUND = timedelta(minutes=15), timedelta(days=7)


def entry(action: str, minutes: float):
    return SimpleNamespace(action=action, at=T0 + timedelta(minutes=minutes))


def failed(minutes: float):
    return entry("calendar.sync_failed", minutes)


def requested(minutes: float):
    return entry(RESYNC_REQUESTED, minutes)


def due_at(entries, minutes: float) -> bool:
    return resync_due(entries, T0 + timedelta(minutes=minutes), BASE, BOUND)


def test_the_wait_doubles_per_resync_and_is_capped_at_a_day():
    assert [resync_wait(n, BASE) for n in range(4)] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert resync_wait(7, BASE) == resync_wait(100, BASE) == timedelta(hours=24)


def test_the_wait_runs_from_the_latest_entry():
    # The task's own retries kept failing until minute 40: the first re-sync waits for 55.
    entries = [failed(0), failed(20), failed(40)]
    assert not due_at(entries, 54) and due_at(entries, 55)
    # A re-sync queued at 55 and not run yet (or lost): the next one waits 30 minutes from it.
    entries.append(requested(55))
    assert not due_at(entries, 84) and due_at(entries, 85)
    entries.append(failed(56))
    assert not due_at(entries, 85) and due_at(entries, 86)


def test_the_bound_runs_from_the_first_failure():
    entries = [failed(0), *[requested(60 * 24 * d) for d in range(1, 7)], failed(60 * 24 * 6 + 1)]
    assert due_at(entries, 60 * 24 * 7 - 1)
    assert not due_at(entries, 60 * 24 * 7 + 1)
    assert not due_at([requested(0)], 60)  # nothing failed since the latest sync


def test_beat_runs_the_sweep_every_base_wait():
    import tasks  # noqa: F401  (registers the tasks)
    from worker.app import app
    from core.settings import Settings

    entry = app.conf.beat_schedule["resync-calendars"]
    assert entry["task"] == "sessionpack.resync_calendars" and entry["task"] in app.tasks
    assert entry["schedule"] == Settings.model_fields["calendar_resync_seconds"].default == 900


def test_a_failure_the_task_will_retry_is_left_to_its_retry_chain_for_its_longest_wait():
    from services.calendar.resync import RETRY_CHAIN_GAP

    retried = SimpleNamespace(action="calendar.sync_failed", at=T0, details={"final": False})
    gap = RETRY_CHAIN_GAP / timedelta(minutes=1)
    assert gap > BASE / timedelta(minutes=1)  # longer than the sweep's own first wait
    assert not due_at([retried], gap - 1) and due_at([retried], gap)  # then the chain counts as dead
    last = SimpleNamespace(action="calendar.sync_failed", at=T0, details={"final": True})
    assert due_at([last], 15)  # the task gave up: the sweep's own wait
