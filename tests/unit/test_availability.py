"""Unit tests for the pure availability engine (services/availability.py).

Times in assertions are written in UTC 'Z' form on purpose: the point of most cases is which
real instant a local opening hour becomes, especially across DST changes.
"""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.availability import (
    BusyIndex,
    SlotRules,
    block_of,
    blocks_overlap,
    candidate_starts,
    check_slot,
    free_slots,
    opening_windows,
    parse_instant,
    to_utc_iso,
)
from services.errors import InvalidInput, OperationFailed, ServiceError

UTC = timezone.utc
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def z(text: str) -> datetime:
    """'2026-12-07T14:00' -> aware UTC datetime (tests write instants in UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def isos(starts: list[datetime]) -> list[str]:
    return [to_utc_iso(s) for s in starts]


def make_rules(
    tz: str = "America/New_York",
    hours: list[tuple[str, str]] | None = None,
    days: tuple[str, ...] = ALL_DAYS,
    exceptions: dict | None = None,
    duration: int = 60,
    **scheduling,
) -> SlotRules:
    """Same hours on `days` (every day by default), everything else from keyword arguments."""
    hours = [("09:00", "17:00")] if hours is None else hours
    return SlotRules(
        timezone=tz,
        weekly={day: hours for day in days},
        exceptions=exceptions or {},
        duration_minutes=duration,
        **scheduling,
    )


def starts_between(rules: SlotRules, start: str, end: str) -> list[str]:
    return isos(candidate_starts(rules, z(start), z(end)))


def free_between(rules: SlotRules, start: str, end: str, *, now=FAR_PAST, busy=()) -> list[str]:
    return isos(free_slots(rules, z(start), z(end), now=now, busy=list(busy)))


def error_of(rules: SlotRules, start: datetime, *, now=FAR_PAST, busy=()) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        check_slot(rules, start, now=now, busy=list(busy))
    return caught.value


# ------------------------------------------------------------------------------------------------
# DST: America/New_York (spring forward 2026-03-08, fall back 2026-11-01)
# ------------------------------------------------------------------------------------------------


def test_nine_am_new_york_is_14z_in_winter_and_13z_in_summer():
    rules = make_rules(hours=[("09:00", "10:00")])
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == ["2026-12-07T14:00:00Z"]
    assert starts_between(rules, "2026-07-06T00:00", "2026-07-07T00:00") == ["2026-07-06T13:00:00Z"]


def test_new_york_spring_forward_week_moves_nine_am_by_one_hour():
    rules = make_rules(hours=[("09:00", "10:00")])
    assert starts_between(rules, "2026-03-06T00:00", "2026-03-10T00:00") == [
        "2026-03-06T14:00:00Z",  # Fri, EST
        "2026-03-07T14:00:00Z",  # Sat, EST
        "2026-03-08T13:00:00Z",  # Sun, EDT from 02:00 local
        "2026-03-09T13:00:00Z",  # Mon, EDT
    ]


def test_new_york_fall_back_week_moves_nine_am_by_one_hour():
    rules = make_rules(hours=[("09:00", "10:00")])
    assert starts_between(rules, "2026-10-30T00:00", "2026-11-03T00:00") == [
        "2026-10-30T13:00:00Z",  # Fri, EDT
        "2026-10-31T13:00:00Z",  # Sat, EDT
        "2026-11-01T14:00:00Z",  # Sun, EST from 02:00 local
        "2026-11-02T14:00:00Z",  # Mon, EST
    ]


def test_new_york_gap_skips_starts_that_do_not_exist():
    # 02:00 and 02:30 do not exist on 2026-03-08; 01:00-04:00 local is only two real hours.
    rules = make_rules(hours=[("01:00", "04:00")], days=("sun",), duration=30, slot_interval_minutes=30)
    starts = candidate_starts(rules, z("2026-03-08T00:00"), z("2026-03-09T00:00"))
    assert isos(starts) == [
        "2026-03-08T06:00:00Z",  # 01:00 EST
        "2026-03-08T06:30:00Z",  # 01:30 EST
        "2026-03-08T07:00:00Z",  # 03:00 EDT
        "2026-03-08T07:30:00Z",  # 03:30 EDT
    ]
    local_hours = {s.astimezone(rules.zone).hour for s in starts}
    assert 2 not in local_hours


def test_new_york_gap_slot_end_is_real_elapsed_time():
    # A 60-minute slot at 01:30 EST ends at 03:30 EDT (07:30Z), inside the window ending 04:00 EDT.
    rules = make_rules(hours=[("01:00", "04:00")], days=("sun",), duration=60, slot_interval_minutes=30)
    assert starts_between(rules, "2026-03-08T00:00", "2026-03-09T00:00") == [
        "2026-03-08T06:00:00Z",
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:00:00Z",  # 03:00 EDT ends 04:00 EDT == window end
    ]
    assert block_of(rules, z("2026-03-08T06:30")) == (z("2026-03-08T06:30"), z("2026-03-08T07:30"))


def test_window_ending_inside_the_gap_ends_when_the_clocks_jump():
    # 00:00-02:30 local: 02:30 never happens, so the window really ends at 03:00 EDT (07:00Z).
    rules = make_rules(hours=[("00:00", "02:30")], days=("sun",), duration=60)
    (window,) = opening_windows(rules, date(2026, 3, 8))
    assert (window.start, window.end) == (z("2026-03-08T05:00"), z("2026-03-08T07:00"))
    assert starts_between(rules, "2026-03-08T00:00", "2026-03-09T00:00") == [
        "2026-03-08T05:00:00Z",
        "2026-03-08T06:00:00Z",
    ]


def test_window_starting_inside_the_gap_starts_when_the_clocks_jump():
    rules = make_rules(hours=[("02:30", "05:00")], days=("sun",), duration=60)
    (window,) = opening_windows(rules, date(2026, 3, 8))
    assert window.start == z("2026-03-08T07:00")  # 03:00 EDT
    # 02:30 is skipped; the grid continues at 03:30 EDT (07:30Z); 04:30 EDT would end after 05:00.
    assert starts_between(rules, "2026-03-08T00:00", "2026-03-09T00:00") == ["2026-03-08T07:30:00Z"]


def test_new_york_overlap_uses_first_occurrence_only():
    # 01:00-02:00 happens twice on 2026-11-01; the grid uses the first (EDT) reading.
    rules = make_rules(hours=[("00:00", "03:00")], days=("sun",), duration=30, slot_interval_minutes=30)
    assert starts_between(rules, "2026-11-01T00:00", "2026-11-02T00:00") == [
        "2026-11-01T04:00:00Z",  # 00:00 EDT
        "2026-11-01T04:30:00Z",  # 00:30 EDT
        "2026-11-01T05:00:00Z",  # 01:00 EDT (first occurrence)
        "2026-11-01T05:30:00Z",  # 01:30 EDT
        "2026-11-01T07:00:00Z",  # 02:00 EST
        "2026-11-01T07:30:00Z",  # 02:30 EST (window ends 03:00 EST = 08:00Z)
    ]


def test_new_york_second_occurrence_is_inside_hours_but_off_grid():
    rules = make_rules(hours=[("00:00", "03:00")], days=("sun",), duration=30, slot_interval_minutes=30)
    error = error_of(rules, z("2026-11-01T06:00"))  # 01:00 EST, the repeated hour
    assert error.code == "slot_off_grid"
    assert "2026-11-01T05:30:00Z" in error.message and "2026-11-01T07:00:00Z" in error.message


def test_overlap_slot_end_is_real_elapsed_time():
    # 01:30 EDT + 60 real minutes = 01:30 EST; the slot lasts one hour, not zero.
    rules = make_rules(hours=[("01:00", "03:00")], days=("sun",), duration=60, slot_interval_minutes=30)
    assert block_of(rules, z("2026-11-01T05:30")) == (z("2026-11-01T05:30"), z("2026-11-01T06:30"))
    assert "2026-11-01T05:30:00Z" in starts_between(rules, "2026-11-01T00:00", "2026-11-02T00:00")


# ------------------------------------------------------------------------------------------------
# DST: Europe/Berlin (spring forward 2026-03-29, fall back 2026-10-25)
# ------------------------------------------------------------------------------------------------


def test_berlin_spring_forward_week_moves_nine_am_by_one_hour():
    rules = make_rules(tz="Europe/Berlin", hours=[("09:00", "10:00")])
    assert starts_between(rules, "2026-03-27T00:00", "2026-03-31T00:00") == [
        "2026-03-27T08:00:00Z",  # Fri, CET
        "2026-03-28T08:00:00Z",  # Sat, CET
        "2026-03-29T07:00:00Z",  # Sun, CEST
        "2026-03-30T07:00:00Z",  # Mon, CEST
    ]


def test_berlin_fall_back_week_moves_nine_am_by_one_hour():
    rules = make_rules(tz="Europe/Berlin", hours=[("09:00", "10:00")])
    assert starts_between(rules, "2026-10-23T00:00", "2026-10-27T00:00") == [
        "2026-10-23T07:00:00Z",  # Fri, CEST
        "2026-10-24T07:00:00Z",  # Sat, CEST
        "2026-10-25T08:00:00Z",  # Sun, CET
        "2026-10-26T08:00:00Z",  # Mon, CET
    ]


def test_berlin_gap_skips_two_thirty():
    rules = make_rules(
        tz="Europe/Berlin", hours=[("01:00", "04:00")], days=("sun",), duration=30, slot_interval_minutes=30
    )
    assert starts_between(rules, "2026-03-28T12:00", "2026-03-30T00:00") == [
        "2026-03-29T00:00:00Z",  # 01:00 CET
        "2026-03-29T00:30:00Z",  # 01:30 CET
        "2026-03-29T01:00:00Z",  # 03:00 CEST (02:00 and 02:30 do not exist)
        "2026-03-29T01:30:00Z",  # 03:30 CEST
    ]


def test_berlin_overlap_and_local_day_crossing_midnight_utc():
    # Berlin's Sunday 01:00 is Saturday 23:00Z: the local day, not the UTC day, owns the slot.
    rules = make_rules(
        tz="Europe/Berlin", hours=[("01:00", "04:00")], days=("sun",), duration=30, slot_interval_minutes=30
    )
    assert starts_between(rules, "2026-10-24T12:00", "2026-10-26T00:00") == [
        "2026-10-24T23:00:00Z",  # 01:00 CEST
        "2026-10-24T23:30:00Z",  # 01:30 CEST
        "2026-10-25T00:00:00Z",  # 02:00 CEST, first occurrence
        "2026-10-25T00:30:00Z",  # 02:30 CEST
        "2026-10-25T02:00:00Z",  # 03:00 CET (01:00Z and 01:30Z are the repeated 02:xx)
        "2026-10-25T02:30:00Z",  # 03:30 CET
    ]
    # A UTC-day query only sees the part of the local day inside it.
    assert starts_between(rules, "2026-10-25T00:00", "2026-10-26T00:00")[0] == "2026-10-25T00:00:00Z"


def test_evening_hours_west_of_utc_belong_to_the_local_day():
    # Monday 20:00-23:00 in Los Angeles is Tuesday 04:00Z-07:00Z in winter.
    rules = make_rules(tz="America/Los_Angeles", hours=[("20:00", "23:00")], days=("mon",))
    assert starts_between(rules, "2026-12-08T00:00", "2026-12-09T00:00") == [
        "2026-12-08T04:00:00Z",
        "2026-12-08T05:00:00Z",
        "2026-12-08T06:00:00Z",
    ]
    closed = make_rules(
        tz="America/Los_Angeles", hours=[("20:00", "23:00")], days=("mon",), exceptions={date(2026, 12, 7): []}
    )
    assert starts_between(closed, "2026-12-08T00:00", "2026-12-09T00:00") == []


# ------------------------------------------------------------------------------------------------
# grid: slot interval vs duration, windows
# ------------------------------------------------------------------------------------------------


def test_grid_defaults_to_duration():
    rules = make_rules(hours=[("09:00", "11:00")], duration=45)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T14:45:00Z",  # 10:30 would end at 11:15, after closing
    ]


def test_interval_shorter_than_duration():
    rules = make_rules(hours=[("09:00", "10:30")], duration=60, slot_interval_minutes=15)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T14:15:00Z",
        "2026-12-07T14:30:00Z",
    ]


def test_interval_longer_than_duration():
    rules = make_rules(hours=[("09:00", "11:00")], duration=30, slot_interval_minutes=60)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T15:00:00Z",
    ]


def test_each_window_has_its_own_grid():
    rules = make_rules(hours=[("09:00", "10:00"), ("10:10", "11:30")], duration=30)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T14:30:00Z",
        "2026-12-07T15:10:00Z",
        "2026-12-07T15:40:00Z",
    ]


def test_slot_must_fit_inside_one_window():
    rules = make_rules(hours=[("09:00", "10:00"), ("10:00", "11:00")], duration=60, slot_interval_minutes=30)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T15:00:00Z",
    ]


def test_overlapping_windows_do_not_duplicate_starts():
    rules = make_rules(hours=[("09:00", "11:00"), ("10:00", "12:00")], duration=60)
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-08T00:00") == [
        "2026-12-07T14:00:00Z",
        "2026-12-07T15:00:00Z",
        "2026-12-07T16:00:00Z",
    ]


def test_window_may_end_at_midnight():
    rules = make_rules(hours=[("22:00", "24:00")], days=("mon",))
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-09T00:00") == [
        "2026-12-08T03:00:00Z",  # Mon 22:00 EST
        "2026-12-08T04:00:00Z",  # Mon 23:00 EST, ends at local midnight
    ]


def test_closed_weekdays_offer_nothing():
    rules = make_rules(days=("mon",))
    assert starts_between(rules, "2026-12-08T00:00", "2026-12-14T00:00") == []  # Tue..Sun


# ------------------------------------------------------------------------------------------------
# window boundaries of the query
# ------------------------------------------------------------------------------------------------


def test_query_window_is_half_open():
    rules = make_rules()
    assert starts_between(rules, "2026-12-07T14:00", "2026-12-07T15:00") == ["2026-12-07T14:00:00Z"]
    assert starts_between(rules, "2026-12-07T13:00", "2026-12-07T14:00") == []
    assert isos(candidate_starts(rules, z("2026-12-07T14:00:01"), z("2026-12-07T15:00"))) == []


def test_query_window_filters_by_start_only():
    # The slot starting inside the query window is offered even though it ends after it.
    rules = make_rules()
    assert starts_between(rules, "2026-12-07T14:00", "2026-12-07T14:30") == ["2026-12-07T14:00:00Z"]


def test_empty_or_reversed_query_window():
    rules = make_rules()
    assert starts_between(rules, "2026-12-07T14:00", "2026-12-07T14:00") == []
    assert starts_between(rules, "2026-12-08T00:00", "2026-12-07T00:00") == []


def test_query_window_in_another_offset_is_the_same_instant():
    rules = make_rules()
    berlin = timezone(timedelta(hours=1))
    local = candidate_starts(rules, datetime(2026, 12, 7, 15, tzinfo=berlin), datetime(2026, 12, 7, 16, tzinfo=berlin))
    assert isos(local) == ["2026-12-07T14:00:00Z"]
    assert all(s.tzinfo is UTC for s in local)


def test_naive_query_window_is_refused():
    with pytest.raises(InvalidInput) as caught:
        candidate_starts(make_rules(), datetime(2026, 12, 7), z("2026-12-08T00:00"))
    assert caught.value.code == "invalid_time"


# ------------------------------------------------------------------------------------------------
# buffers and busy intervals
# ------------------------------------------------------------------------------------------------


def test_block_of_adds_buffers():
    rules = make_rules(buffer_before_minutes=10, buffer_after_minutes=15)
    assert block_of(rules, z("2026-12-07T15:00")) == (z("2026-12-07T14:50"), z("2026-12-07T16:15"))


def test_buffer_after_removes_the_next_grid_start():
    # Existing session 10:00-11:00 local with a 15-minute after-buffer is busy until 11:15.
    rules = make_rules(duration=60, slot_interval_minutes=30, buffer_after_minutes=15)
    busy = [block_of(rules, z("2026-12-07T15:00"))]
    assert busy == [(z("2026-12-07T15:00"), z("2026-12-07T16:15"))]
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", busy=busy)
    assert "2026-12-07T16:00:00Z" not in free  # 11:00 overlaps the buffer
    assert "2026-12-07T14:30:00Z" not in free  # 09:30's own after-buffer runs into 10:00
    assert free[0] == "2026-12-07T16:30:00Z"  # 11:30 is the first free start
    assert free[-1] == "2026-12-07T21:00:00Z"  # 16:00 is the last start that fits


def test_buffer_before_removes_the_start_right_after_a_session():
    rules = make_rules(duration=60, slot_interval_minutes=30, buffer_before_minutes=30)
    busy = [(z("2026-12-07T15:00"), z("2026-12-07T16:00"))]
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", busy=busy)
    assert "2026-12-07T16:00:00Z" not in free  # its block starts at 15:30Z, inside the session
    assert "2026-12-07T16:30:00Z" in free
    assert "2026-12-07T14:00:00Z" in free  # ends 15:00Z exactly when the session starts


def test_touching_intervals_do_not_overlap():
    rules = make_rules()
    busy = [(z("2026-12-07T15:00"), z("2026-12-07T16:00"))]
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", busy=busy)
    assert free[:2] == ["2026-12-07T14:00:00Z", "2026-12-07T16:00:00Z"]


def test_long_busy_interval_hides_behind_short_ones():
    # Sorted by start the short interval comes second; the long one still covers everything.
    rules = make_rules(duration=30)
    busy = [(z("2026-12-07T13:00"), z("2026-12-07T23:00")), (z("2026-12-07T13:05"), z("2026-12-07T13:10"))]
    assert free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", busy=busy) == []


def test_busy_in_other_offsets_and_empty_intervals():
    rules = make_rules()
    ny = timezone(timedelta(hours=-5))
    busy = [
        (datetime(2026, 12, 7, 9, tzinfo=ny), datetime(2026, 12, 7, 10, tzinfo=ny)),  # 14:00Z-15:00Z
        (z("2026-12-07T16:30"), z("2026-12-07T16:30")),  # empty: blocks nothing
    ]
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", busy=busy)
    assert "2026-12-07T14:00:00Z" not in free
    assert "2026-12-07T16:00:00Z" in free


def test_blocks_overlap_half_open():
    a = (z("2026-12-07T10:00"), z("2026-12-07T11:00"))
    assert blocks_overlap(a, (z("2026-12-07T10:59"), z("2026-12-07T12:00")))
    assert blocks_overlap(a, (z("2026-12-07T09:00"), z("2026-12-07T13:00")))
    assert not blocks_overlap(a, (z("2026-12-07T11:00"), z("2026-12-07T12:00")))
    assert not blocks_overlap(a, (z("2026-12-07T09:00"), z("2026-12-07T10:00")))
    assert not blocks_overlap(a, (z("2026-12-07T10:30"), z("2026-12-07T10:30")))


# ------------------------------------------------------------------------------------------------
# minimum notice
# ------------------------------------------------------------------------------------------------


def test_min_notice_hides_starts_too_soon():
    rules = make_rules(slot_interval_minutes=30, min_notice_minutes=240)
    now = z("2026-12-07T14:10")  # 09:10 local; earliest start 13:10 local
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", now=now)
    assert free[0] == "2026-12-07T18:30:00Z"


def test_start_exactly_at_notice_boundary_is_offered():
    rules = make_rules(min_notice_minutes=60)
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", now=z("2026-12-07T14:00"))
    assert free[0] == "2026-12-07T15:00:00Z"


def test_without_notice_a_start_equal_to_now_is_offered():
    rules = make_rules()
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", now=z("2026-12-07T14:00"))
    assert free[0] == "2026-12-07T14:00:00Z"


def test_past_starts_are_not_offered():
    rules = make_rules()
    free = free_between(rules, "2026-12-07T00:00", "2026-12-08T00:00", now=z("2026-12-07T14:01"))
    assert free[0] == "2026-12-07T15:00:00Z"


# ------------------------------------------------------------------------------------------------
# exceptions
# ------------------------------------------------------------------------------------------------


def test_exception_closes_a_day():
    rules = make_rules(exceptions={date(2026, 12, 25): []})
    assert starts_between(rules, "2026-12-25T00:00", "2026-12-26T05:00") == []
    assert len(starts_between(rules, "2026-12-24T00:00", "2026-12-25T05:00")) == 8


def test_exception_replaces_weekly_hours():
    rules = make_rules(exceptions={date(2026, 12, 24): [("10:00", "12:00")]})
    assert starts_between(rules, "2026-12-24T00:00", "2026-12-25T05:00") == [
        "2026-12-24T15:00:00Z",
        "2026-12-24T16:00:00Z",
    ]


def test_exception_opens_a_day_without_weekly_hours():
    rules = make_rules(days=("mon",), exceptions={date(2026, 12, 26): [("10:00", "11:00")]})
    assert starts_between(rules, "2026-12-26T00:00", "2026-12-27T05:00") == ["2026-12-26T15:00:00Z"]


# ------------------------------------------------------------------------------------------------
# from_config
# ------------------------------------------------------------------------------------------------

CONTRACT_AVAILABILITY = {
    "weekly": {"mon": [["09:00", "17:00"]], "wed": [["09:00", "12:00"], ["13:00", "17:00"]]},
    "exceptions": [{"date": "2026-12-25", "hours": []}],
}


def test_from_config_contract_example():
    scheduling = {
        "booking_mode": "automatic",
        "sessions_per_booking": 10,
        "max_bookings_per_day": None,
        "min_notice_minutes": 240,
        "buffer_after_minutes": 15,
        "slot_interval_minutes": 30,
    }
    rules = SlotRules.from_config(CONTRACT_AVAILABILITY, "America/New_York", 60, scheduling)
    assert (rules.slot_interval_minutes, rules.min_notice_minutes) == (30, 240)
    assert (rules.buffer_before_minutes, rules.buffer_after_minutes) == (0, 15)
    assert rules.exceptions == {date(2026, 12, 25): []}
    wednesday = starts_between(rules, "2026-12-09T00:00", "2026-12-10T00:00")
    assert "2026-12-09T16:30:00Z" not in wednesday  # 11:30 would run into the lunch break
    assert "2026-12-09T18:00:00Z" in wednesday  # 13:00, the afternoon window's own grid
    assert starts_between(rules, "2026-12-08T00:00", "2026-12-09T00:00") == []  # Tuesday


def test_from_config_defaults_when_scheduling_is_missing_or_null():
    for scheduling in ({}, None, {"slot_interval_minutes": None, "min_notice_minutes": None}):
        rules = SlotRules.from_config(CONTRACT_AVAILABILITY, "America/New_York", 45, scheduling)
        assert rules.interval_minutes == 45
        assert (rules.min_notice_minutes, rules.buffer_before_minutes, rules.buffer_after_minutes) == (0, 0, 0)


def test_from_config_without_availability_offers_nothing():
    rules = SlotRules.from_config({}, "Europe/Berlin", 60, {})
    assert starts_between(rules, "2026-12-07T00:00", "2026-12-14T00:00") == []


@pytest.mark.parametrize(
    "weekly",
    [
        {"mon": [["17:00", "09:00"]]},  # ends before it starts
        {"mon": [["09:00", "09:00"]]},  # empty
        {"mon": [["09:00", "25:00"]]},
        {"mon": [["9am", "17:00"]]},
        {"mon": [["24:00", "24:00"]]},
        {"mon": [["09:00"]]},
        {"monday": [["09:00", "17:00"]]},
    ],
)
def test_invalid_hours_are_refused(weekly):
    with pytest.raises(InvalidInput) as caught:
        SlotRules.from_config({"weekly": weekly}, "America/New_York", 60, {})
    assert caught.value.code == "invalid_hours"


def test_invalid_exception_date_is_refused():
    with pytest.raises(InvalidInput) as caught:
        SlotRules.from_config({"exceptions": [{"date": "Christmas", "hours": []}]}, "America/New_York", 60, {})
    assert caught.value.code == "invalid_hours"


def test_unknown_timezone_is_refused():
    with pytest.raises(InvalidInput) as caught:
        SlotRules.from_config(CONTRACT_AVAILABILITY, "Mars/Olympus_Mons", 60, {})
    assert caught.value.code == "invalid_timezone"


@pytest.mark.parametrize("duration, scheduling", [(0, {}), (60, {"slot_interval_minutes": 0}), (60, {"buffer_after_minutes": -5})])
def test_invalid_numbers_are_refused(duration, scheduling):
    with pytest.raises(InvalidInput):
        SlotRules.from_config(CONTRACT_AVAILABILITY, "America/New_York", duration, scheduling)


# ------------------------------------------------------------------------------------------------
# check_slot
# ------------------------------------------------------------------------------------------------


def test_check_slot_accepts_a_free_grid_start():
    rules = make_rules(min_notice_minutes=60)
    assert check_slot(rules, z("2026-12-07T16:00"), now=z("2026-12-07T12:00"), busy=[]) is None


def test_check_slot_in_past():
    error = error_of(make_rules(), z("2026-12-07T14:00"), now=z("2026-12-07T14:01"))
    assert isinstance(error, OperationFailed) and error.exit_code == 1
    assert error.code == "slot_in_past"
    assert "2026-12-07T14:00:00Z" in error.message and "sessionpack slots" in error.message


def test_check_slot_too_soon_names_the_notice():
    rules = make_rules(min_notice_minutes=240)
    error = error_of(rules, z("2026-12-07T15:00"), now=z("2026-12-07T13:00"))
    assert isinstance(error, OperationFailed) and error.code == "slot_too_soon"
    assert "240 minutes" in error.message
    assert "2026-12-07T17:00:00Z" in error.message  # earliest allowed start
    assert "2026-12-07T15:00:00Z" in error.message


@pytest.mark.parametrize(
    "start",
    [
        "2026-12-07T13:00",  # 08:00, before opening
        "2026-12-07T21:30",  # 16:30: a 60-minute slot would end after 17:00
        "2026-12-08T15:00",  # Tuesday, closed
    ],
)
def test_check_slot_outside_availability(start):
    rules = make_rules(days=("mon",), slot_interval_minutes=30)
    error = error_of(rules, z(start))
    assert isinstance(error, InvalidInput) and error.exit_code == 2
    assert error.code == "slot_outside_availability"
    assert to_utc_iso(z(start)) in error.message and "sessionpack slots" in error.message


def test_check_slot_outside_availability_on_exception_day_says_closed():
    rules = make_rules(exceptions={date(2026, 12, 25): []})
    error = error_of(rules, z("2026-12-25T15:00"))
    assert error.code == "slot_outside_availability" and "closed" in error.message


def test_check_slot_off_grid_names_the_nearest_starts():
    rules = make_rules(slot_interval_minutes=30)
    error = error_of(rules, z("2026-12-07T14:15"))
    assert isinstance(error, InvalidInput) and error.code == "slot_off_grid"
    assert "2026-12-07T14:00:00Z" in error.message and "2026-12-07T14:30:00Z" in error.message
    assert "2026-12-07T14:15:00Z" in error.message


def test_check_slot_off_grid_by_seconds():
    error = error_of(make_rules(), z("2026-12-07T14:00:30"))
    assert error.code == "slot_off_grid"


def test_check_slot_unavailable_when_block_overlaps_busy():
    rules = make_rules(buffer_after_minutes=15)
    busy = [(z("2026-12-07T15:10"), z("2026-12-07T15:20"))]
    error = error_of(rules, z("2026-12-07T14:00"), busy=busy)  # block 14:00-15:15 overlaps
    assert isinstance(error, OperationFailed) and error.code == "slot_unavailable"
    assert "2026-12-07T14:00:00Z" in error.message and "sessionpack slots" in error.message


def test_check_slot_reports_in_the_documented_order():
    rules = make_rules(days=("mon",), min_notice_minutes=60)
    everywhere_busy = [(z("2000-01-01T00:00"), z("2100-01-01T00:00"))]
    # Past beats everything else, even being outside hours and busy.
    assert error_of(rules, z("2026-12-08T03:00"), now=z("2026-12-08T04:00"), busy=everywhere_busy).code == "slot_in_past"
    # Too soon beats outside hours.
    assert error_of(rules, z("2026-12-08T03:00"), now=z("2026-12-08T02:30"), busy=everywhere_busy).code == "slot_too_soon"
    # Outside hours beats busy.
    assert error_of(rules, z("2026-12-08T15:00"), busy=everywhere_busy).code == "slot_outside_availability"
    # Off grid beats busy.
    assert error_of(rules, z("2026-12-07T14:10"), busy=everywhere_busy).code == "slot_off_grid"
    assert error_of(rules, z("2026-12-07T14:00"), busy=everywhere_busy).code == "slot_unavailable"


def test_check_slot_in_a_dst_week():
    rules = make_rules(tz="Europe/Berlin", hours=[("09:00", "10:00")])
    assert check_slot(rules, z("2026-03-30T07:00"), now=FAR_PAST, busy=[]) is None  # CEST
    assert error_of(rules, z("2026-03-30T08:00")).code == "slot_outside_availability"  # 10:00 CEST


# ------------------------------------------------------------------------------------------------
# parse_instant and to_utc_iso
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-12-07T14:00:00Z", "2026-12-07T14:00:00Z"),
        ("2026-12-07T09:00:00-05:00", "2026-12-07T14:00:00Z"),
        ("2026-12-07T15:00:00+01:00", "2026-12-07T14:00:00Z"),
        ("2026-12-07t14:00:00z", "2026-12-07T14:00:00Z"),
        ("  2026-12-07T14:00Z ", "2026-12-07T14:00:00Z"),
        ("2026-12-07T14:00:00.500Z", "2026-12-07T14:00:00.500000Z"),
    ],
)
def test_parse_instant_accepts_offsets(text, expected):
    parsed = parse_instant(text)
    assert parsed.tzinfo is UTC
    assert to_utc_iso(parsed) == expected


@pytest.mark.parametrize("text", ["2026-12-07T14:00:00", "2026-12-07", "tomorrow", "", "   ", None, 1765116000])
def test_parse_instant_refuses_naive_and_garbage(text):
    with pytest.raises(InvalidInput) as caught:
        parse_instant(text, field="slots[0]")
    assert caught.value.code == "invalid_time"
    assert "slots[0]" in caught.value.message
    assert "2026-12-07T14:00:00Z" in caught.value.message  # shows the expected form


def test_parse_instant_says_the_offset_is_missing():
    with pytest.raises(InvalidInput) as caught:
        parse_instant("2026-12-07T14:00:00")
    assert "offset" in caught.value.message


def test_to_utc_iso_converts_offsets_and_refuses_naive():
    assert to_utc_iso(datetime(2026, 12, 7, 9, tzinfo=timezone(timedelta(hours=-5)))) == "2026-12-07T14:00:00Z"
    with pytest.raises(InvalidInput):
        to_utc_iso(datetime(2026, 12, 7, 14))


# ------------------------------------------------------------------------------------------------
# property: free slots are bookable, everything else is refused for a reason
# ------------------------------------------------------------------------------------------------

# Zones with ordinary DST, none, a 30-minute offset, and a 30-minute DST shift (Lord Howe).
ZONES = ["America/New_York", "Europe/Berlin", "UTC", "Asia/Kolkata", "Australia/Lord_Howe"]
# Anchors near the DST changes of those zones, so generated windows often contain one.
ANCHORS = [z(t) for t in ("2026-03-08T00:00", "2026-11-01T00:00", "2026-03-29T00:00", "2026-10-25T00:00",
                          "2026-04-05T00:00", "2026-10-04T00:00", "2026-07-01T00:00")]


@st.composite
def day_hours(draw):
    """0-2 windows on 5-minute boundaries, as HH:MM strings (end may be 24:00)."""
    windows = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, 287)) * 5
        end = draw(st.integers(start // 5 + 1, 288)) * 5
        windows.append((f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"))
    return windows


@st.composite
def scenarios(draw):
    anchor = draw(st.sampled_from(ANCHORS))
    window_start = anchor + timedelta(minutes=5 * draw(st.integers(-12 * 48, 12 * 48)))
    window_end = window_start + timedelta(minutes=5 * draw(st.integers(0, 12 * 72)))
    rules = SlotRules(
        timezone=draw(st.sampled_from(ZONES)),
        weekly={day: draw(day_hours()) for day in ALL_DAYS},
        exceptions={(anchor + timedelta(days=draw(st.integers(-2, 2)))).date(): draw(day_hours())},
        duration_minutes=draw(st.sampled_from([15, 30, 45, 60, 90])),
        slot_interval_minutes=draw(st.sampled_from([None, 10, 15, 30, 60])),
        min_notice_minutes=draw(st.sampled_from([0, 30, 240])),
        buffer_before_minutes=draw(st.sampled_from([0, 10])),
        buffer_after_minutes=draw(st.sampled_from([0, 15])),
    )
    now = window_start + timedelta(minutes=5 * draw(st.integers(-12 * 24, 12 * 24)))
    busy = []
    for _ in range(draw(st.integers(0, 12))):
        start = window_start + timedelta(minutes=5 * draw(st.integers(-24, 12 * 72)))
        busy.append((start, start + timedelta(minutes=5 * draw(st.integers(0, 48)))))
    return rules, window_start, window_end, now, busy


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_free_slots_are_bookable_and_the_rest_refused(scenario):
    rules, window_start, window_end, now, busy = scenario
    candidates = candidate_starts(rules, window_start, window_end)
    free = free_slots(rules, window_start, window_end, now=now, busy=busy)

    assert candidates == sorted(set(candidates))
    assert all(s.tzinfo is UTC and window_start <= s < window_end for s in candidates)
    assert set(free) <= set(candidates)
    for start in free:
        check_slot(rules, start, now=now, busy=busy)  # must not raise
        assert not any(blocks_overlap(block_of(rules, start), b) for b in busy)
    for start in set(candidates) - set(free):
        assert error_of(rules, start, now=now, busy=busy).code in {"slot_in_past", "slot_too_soon", "slot_unavailable"}


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(0, 12 * 72))
def test_property_candidate_starts_split_at_any_instant(scenario, cut_steps):
    rules, window_start, window_end, _, _ = scenario
    cut = min(window_start + timedelta(minutes=5 * cut_steps), window_end)
    whole = candidate_starts(rules, window_start, window_end)
    assert whole == candidate_starts(rules, window_start, cut) + candidate_starts(rules, cut, window_end)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_property_busy_index_matches_a_linear_scan(scenario):
    rules, window_start, window_end, _, busy = scenario
    index = BusyIndex(busy)
    for steps in range(0, 12 * 72, 7):
        start = window_start + timedelta(minutes=5 * steps)
        block = block_of(rules, start)
        assert index.overlaps(block) == any(blocks_overlap(block, b) for b in busy)


# ------------------------------------------------------------------------------------------------
# performance sanity
# ------------------------------------------------------------------------------------------------


def test_ninety_days_with_ten_thousand_busy_intervals():
    rules = make_rules(hours=[("08:00", "20:00")], duration=60, slot_interval_minutes=15,
                       buffer_after_minutes=15, min_notice_minutes=60)
    # Local midnights (EST, then EDT): 90 whole local days across the spring-forward change.
    start, end = z("2026-03-01T05:00"), z("2026-05-30T04:00")
    generator = random.Random(20261207)
    busy = []
    for _ in range(10_000):
        begin = start + timedelta(minutes=generator.randrange(0, 90 * 24 * 60))
        busy.append((begin, begin + timedelta(minutes=generator.choice([5, 15, 30]))))

    free = free_slots(rules, start, end, now=start, busy=busy)

    candidates = candidate_starts(rules, start, end)
    assert len(candidates) == 90 * 45  # 08:00..19:00 every 15 minutes, every day
    assert 0 < len(free) < len(candidates)
    for slot in free[:: max(1, len(free) // 50)]:
        check_slot(rules, slot, now=start, busy=busy)


# ------------------------------------------------------------------------------------------------
# property: the one-pass engine answers what the per-slot reference answers
# ------------------------------------------------------------------------------------------------
#
# The reference below is the engine as it was before the one-pass version (kept here as the
# oracle): every grid wall time read in the zone on its own (fold=0, gap times skipped), every
# candidate's block checked against every busy interval. The engine now maps a window's grid
# linearly from its start when no clock change falls inside it and walks the sorted busy blocks
# once; both must give exactly the same instants.

from zoneinfo import ZoneInfo  # noqa: E402

from services.availability import hours_for  # noqa: E402


def _reference_wall_to_utc(day, minute, zone):
    wall = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    return instant if instant.astimezone(zone).replace(tzinfo=None) == wall else None


def reference_candidates(rules, low, high):
    low, high = low.astimezone(UTC), high.astimezone(UTC)
    if high <= low:
        return []
    zone = ZoneInfo(rules.timezone)
    duration = timedelta(minutes=rules.duration_minutes)
    out = []
    day, last = low.astimezone(zone).date(), high.astimezone(zone).date()
    while day <= last:
        starts = set()
        for window in opening_windows(rules, day):
            for minute in range(window.start_minute, window.end_minute, rules.interval_minutes):
                start = _reference_wall_to_utc(day, minute, zone)
                if start is None or start < window.start:
                    continue
                if start + duration > window.end:
                    break
                starts.add(start)
        out.extend(s for s in sorted(starts) if low <= s < high)
        day += timedelta(days=1)
    return out


def reference_free(rules, low, high, *, now, busy):
    earliest = now.astimezone(UTC) + timedelta(minutes=rules.min_notice_minutes)
    busy = [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in busy]
    return [s for s in reference_candidates(rules, low, high)
            if s >= earliest and not any(blocks_overlap(block_of(rules, s), b) for b in busy)]


# The spring and autumn changes of New York (2026-03-08, 2026-11-01) and Berlin (2026-03-29,
# 2026-10-25), Lord Howe's half-hour ones, and a plain summer day.
ORACLE_ANCHORS = [z(t) for t in ("2026-03-08T06:00", "2026-11-01T05:00", "2026-03-29T01:00", "2026-10-25T01:00",
                                 "2026-04-05T00:00", "2026-10-04T00:00", "2026-07-01T00:00", "2027-03-14T07:00")]


@st.composite
def oracle_scenarios(draw):
    anchor = draw(st.sampled_from(ORACLE_ANCHORS))
    window_start = anchor + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 24 * 60)))
    window_end = window_start + timedelta(minutes=draw(st.integers(0, 5 * 24 * 60)))
    zone = draw(st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]))
    rules = SlotRules(
        timezone=zone,
        weekly={day: draw(day_hours()) for day in ALL_DAYS},
        exceptions={(anchor + timedelta(days=draw(st.integers(-2, 2)))).date(): draw(day_hours())},
        duration_minutes=draw(st.sampled_from([5, 15, 25, 30, 45, 60, 90, 240])),
        slot_interval_minutes=draw(st.sampled_from([None, 5, 7, 10, 15, 20, 30, 45, 60, 90])),
        min_notice_minutes=draw(st.sampled_from([0, 1, 30, 240, 1440])),
        buffer_before_minutes=draw(st.sampled_from([0, 5, 10, 60])),
        buffer_after_minutes=draw(st.sampled_from([0, 7, 15, 120])),
    )
    now = window_start + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 2 * 24 * 60)))
    busy = []
    for _ in range(draw(st.integers(0, 40))):
        start = window_start + timedelta(minutes=draw(st.integers(-24 * 60, 5 * 24 * 60)))
        busy.append((start, start + timedelta(minutes=draw(st.integers(-5, 6 * 60)))))
    # Busy times may come in any offset (a calendar feed's, for example).
    if busy and draw(st.booleans()):
        berlin = ZoneInfo("Europe/Berlin")
        busy = [(s.astimezone(berlin), e) for s, e in busy]
    return rules, window_start, window_end, now, busy


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oracle_scenarios())
def test_property_one_pass_engine_matches_the_per_slot_reference(scenario):
    rules, window_start, window_end, now, busy = scenario
    assert candidate_starts(rules, window_start, window_end) == reference_candidates(rules, window_start, window_end)
    free = free_slots(rules, window_start, window_end, now=now, busy=busy)
    assert free == reference_free(rules, window_start, window_end, now=now, busy=busy)
    assert all(s.tzinfo is UTC for s in free)


@pytest.mark.parametrize("zone, day", [
    ("America/New_York", date(2026, 3, 8)), ("America/New_York", date(2026, 11, 1)),
    ("Europe/Berlin", date(2026, 3, 29)), ("Europe/Berlin", date(2026, 10, 25)),
])
@pytest.mark.parametrize("hours", [("00:00", "24:00"), ("01:00", "04:00"), ("02:00", "06:00"), ("02:30", "02:45"),
                                   ("01:15", "01:50"), ("03:00", "03:10")])
@pytest.mark.parametrize("interval", [None, 15, 45])
def test_dst_days_match_the_reference(zone, day, hours, interval):
    rules = make_rules(tz=zone, hours=[hours], duration=30, slot_interval_minutes=interval, buffer_after_minutes=10)
    low = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    high = low + timedelta(days=3)
    busy = [(low + timedelta(hours=h), low + timedelta(hours=h, minutes=20)) for h in range(0, 72, 5)]
    assert candidate_starts(rules, low, high) == reference_candidates(rules, low, high)
    assert free_slots(rules, low, high, now=FAR_PAST, busy=busy) == reference_free(rules, low, high, now=FAR_PAST, busy=busy)
    assert hours_for(rules, day)  # the day is open: the case is not vacuous
