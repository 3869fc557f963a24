"""Availability: which start times a booking page offers, and whether one requested start is bookable.

Pure functions over a `SlotRules` value: no database, no clock, no I/O. Callers pass `now` and the
busy intervals (the blocks of existing active sessions, already including their buffers, plus
calendar busy times), so the same rules give the same answer in `slots`, in booking and in tests.

Time model:
- Opening hours are wall-clock times in the page's timezone, per local day. A day's exception
  hours replace its weekly hours; an empty list closes the day.
- Each opening window has its own grid: the window's local start, then every slot interval of
  wall-clock time. A grid time inside a spring-forward gap does not exist and is skipped; a grid
  time inside a fall-back overlap means its first occurrence (fold=0).
- A slot ends `duration` of real elapsed time after its start, and the whole slot must lie inside
  the window's real bounds. A window bound that falls in a gap is the instant the clocks jump.
- Every instant returned is an aware datetime in UTC; every interval is half-open [start, end).

Kept as one module (about 600 lines) on purpose: the time model above is one algorithm whose
grid, rules and checks share private helpers; split, its invariants would be spread over files.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone as _timezone
from itertools import accumulate
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidInput, OperationFailed

__all__ = [
    "UTC",
    "BusyIndex",
    "Interval",
    "OpenWindow",
    "SlotRules",
    "block_of",
    "blocks_overlap",
    "candidate_starts",
    "check_slot",
    "free_slots",
    "hours_for",
    "opening_windows",
    "parse_instant",
    "to_utc_iso",
]

UTC = _timezone.utc

Interval = tuple[datetime, datetime]
"""Aware UTC instants, half-open [start, end)."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # position == date.weekday()
MINUTES_PER_DAY = 24 * 60
SLOTS_HINT = "run `sessionpack slots` to see free times"
EXAMPLE_INSTANT = "2026-12-07T14:00:00Z"

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

# Parsed opening hours: (start, end) in minutes after local midnight, end may be 1440 ("24:00").
MinuteWindow = tuple[int, int]


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotRules:
    """Everything that decides which start times a booking page (or event type) offers."""

    timezone: str
    weekly: Mapping[str, Sequence[tuple[str, str]]]
    exceptions: Mapping[date, Sequence[tuple[str, str]]]
    duration_minutes: int
    slot_interval_minutes: int | None = None
    min_notice_minutes: int = 0
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    # Parsed once here so the per-slot loops never touch strings or the zone database by name.
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _weekly_minutes: tuple[tuple[MinuteWindow, ...], ...] = field(init=False, repr=False, compare=False)
    _exception_minutes: Mapping[date, tuple[MinuteWindow, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _require_minutes(self.duration_minutes, "duration_minutes", minimum=1, code="invalid_duration")
        if self.slot_interval_minutes is not None:
            _require_minutes(self.slot_interval_minutes, "slot_interval_minutes", minimum=1)
        _require_minutes(self.min_notice_minutes, "min_notice_minutes", minimum=0)
        _require_minutes(self.buffer_before_minutes, "buffer_before_minutes", minimum=0)
        _require_minutes(self.buffer_after_minutes, "buffer_after_minutes", minimum=0)
        # frozen=True forbids normal assignment; these derived fields are set exactly once, here.
        object.__setattr__(self, "_zone", _load_zone(self.timezone))
        object.__setattr__(self, "_weekly_minutes", _parse_weekly(self.weekly))
        object.__setattr__(self, "_exception_minutes", _parse_exceptions(self.exceptions))

    @property
    def interval_minutes(self) -> int:
        """The grid step: the configured slot interval, or the duration when none is set."""
        return self.slot_interval_minutes or self.duration_minutes

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @classmethod
    def from_config(
        cls,
        availability: dict | None,
        timezone: str,
        duration_minutes: int,
        scheduling: dict | None,
    ) -> "SlotRules":
        """Build rules from the configuration shapes of CONTRACT.md.

        `availability` is {"weekly": {"mon": [["09:00", "17:00"]], ...},
        "exceptions": [{"date": "2026-12-25", "hours": []}]}; `scheduling` may hold any of
        slot_interval_minutes, min_notice_minutes, buffer_before_minutes, buffer_after_minutes
        (missing or null means the default); its other keys are not about availability.
        """
        availability = availability or {}
        scheduling = scheduling or {}
        weekly = {
            day: [_as_pair(pair) for pair in (windows or [])]
            for day, windows in (availability.get("weekly") or {}).items()
        }
        return cls(
            timezone=timezone,
            weekly=weekly,
            exceptions=_exceptions_from_config(availability.get("exceptions")),
            duration_minutes=duration_minutes,
            slot_interval_minutes=scheduling.get("slot_interval_minutes"),
            min_notice_minutes=_setting(scheduling, "min_notice_minutes"),
            buffer_before_minutes=_setting(scheduling, "buffer_before_minutes"),
            buffer_after_minutes=_setting(scheduling, "buffer_after_minutes"),
        )


def _setting(scheduling: Mapping[str, Any], key: str) -> Any:
    """A scheduling number whose absence (or null) means zero."""
    value = scheduling.get(key)
    return 0 if value is None else value


def _as_pair(pair: Any) -> Any:
    """JSON gives [start, end] lists; keep anything else as is so validation can name it."""
    return tuple(pair) if isinstance(pair, (list, tuple)) else pair


def _exceptions_from_config(raw: Any) -> dict[date, list[Any]]:
    """[{"date": ..., "hours": [...]}, ...] -> {date: [pairs]}.

    A date listed twice gets the union of its hours rather than silently losing one entry.
    """
    if not raw:
        return {}
    entries = raw.items() if isinstance(raw, Mapping) else _exception_entries(raw)
    merged: dict[date, list[Any]] = {}
    for day, hours in entries:
        merged.setdefault(_parse_date(day), []).extend(_as_pair(p) for p in (hours or []))
    return merged


def _exception_entries(raw: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    for entry in raw:
        if not isinstance(entry, Mapping) or "date" not in entry:
            raise InvalidInput(
                "invalid_hours",
                f"availability exception {entry!r} must look like "
                '{"date": "2026-12-25", "hours": []}',
            )
        yield entry["date"], entry.get("hours")


def _require_minutes(value: Any, name: str, *, minimum: int, code: str = "invalid_scheduling") -> None:
    # bool is an int subclass; `true` minutes is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(code, f"{name} is {value!r}; it must be a whole number of minutes >= {minimum}")


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidInput(
            "invalid_timezone",
            f"timezone {name!r} is not an IANA timezone; use a name like America/New_York or Europe/Berlin",
        ) from None


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            "invalid_hours", f"availability exception date {value!r} is not a date; write it like 2026-12-25"
        ) from None


def _parse_weekly(weekly: Mapping[str, Sequence[Any]]) -> tuple[tuple[MinuteWindow, ...], ...]:
    """{"mon": [...], ...} -> seven tuples of minute windows indexed by date.weekday()."""
    days: list[tuple[MinuteWindow, ...]] = [() for _ in WEEKDAYS]
    for key, windows in (weekly or {}).items():
        name = str(key).strip().lower()
        if name not in WEEKDAYS:
            raise InvalidInput(
                "invalid_hours", f"weekly hours key {key!r} is not a weekday; use one of {', '.join(WEEKDAYS)}"
            )
        days[WEEKDAYS.index(name)] = _parse_windows(windows, where=f"weekly hours for {name}")
    return tuple(days)


def _parse_exceptions(exceptions: Mapping[Any, Sequence[Any]]) -> dict[date, tuple[MinuteWindow, ...]]:
    parsed: dict[date, tuple[MinuteWindow, ...]] = {}
    for key, windows in (exceptions or {}).items():
        day = _parse_date(key)
        parsed[day] = parsed.get(day, ()) + _parse_windows(windows, where=f"exception hours for {day}")
    return parsed


def _parse_windows(windows: Sequence[Any] | None, *, where: str) -> tuple[MinuteWindow, ...]:
    return tuple(_parse_window(pair, where=where) for pair in (windows or ()))


def _parse_window(pair: Any, *, where: str) -> MinuteWindow:
    if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise InvalidInput(
            "invalid_hours", f'{where}: {pair!r} must be a [start, end] pair like ["09:00", "17:00"]'
        )
    start, end = _parse_clock(pair[0], where=where), _parse_clock(pair[1], where=where)
    if start >= MINUTES_PER_DAY:
        raise InvalidInput("invalid_hours", f"{where}: a window cannot start at 24:00; start it at 00:00 the next day")
    if end <= start:
        raise InvalidInput(
            "invalid_hours",
            f"{where}: window {pair[0]}-{pair[1]} ends before it starts; windows cannot cross midnight, "
            "so end it at 24:00 and continue at 00:00 the next day",
        )
    return start, end


def _parse_clock(text: Any, *, where: str) -> int:
    """'09:30' -> 570; '24:00' -> 1440 (only meaningful as an end)."""
    match = _CLOCK.match(text.strip()) if isinstance(text, str) else None
    hours, minutes = (int(match[1]), int(match[2])) if match else (-1, -1)
    if not match or minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise InvalidInput("invalid_hours", f"{where}: {text!r} is not a time of day; write it as HH:MM, like 09:00")
    return hours * 60 + minutes


def _format_clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --------------------------------------------------------------------------------------------
# Instants
# --------------------------------------------------------------------------------------------


def to_utc_iso(dt: datetime) -> str:
    """An aware datetime as '2026-12-07T14:00:00Z' (microseconds only when there are any)."""
    if dt.__class__ is datetime and dt.tzinfo is UTC:
        return dt.isoformat()[:-6] + "Z"  # '...+00:00' -> '...Z' in one call
    return _as_utc(dt, "time").replace(tzinfo=None).isoformat() + "Z"


MIN_YEAR, MAX_YEAR = 1970, 2999  # the years a booking or a query may name


MAX_INSTANT_LENGTH = 64


def parse_instant(text: str, field: str = "slot") -> datetime:
    """ISO 8601 with 'Z' or an offset -> aware UTC datetime.

    A time without an offset is refused rather than guessed: the same wall time means different
    instants for the customer, the page and the server.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(
            "invalid_time", f"{field} {str(text)[:64]!r} is not a time; write it in ISO 8601 with an offset, like {EXAMPLE_INSTANT}"
        )
    if len(text) > MAX_INSTANT_LENGTH:
        raise InvalidInput("invalid_request", f"{field} has {len(text)} characters; a time in ISO 8601 has at most "
                                              f"{MAX_INSTANT_LENGTH}, like {EXAMPLE_INSTANT}")
    try:
        # RFC 3339 allows lower-case 't' and 'z'; fromisoformat does not.
        parsed = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise InvalidInput(
            "invalid_time",
            f"{field} {text!r} is not an ISO 8601 time; write it like {EXAMPLE_INSTANT} or 2026-12-07T09:00:00-05:00",
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(
            "invalid_time",
            f"{field} {text!r} has no UTC offset, so it is ambiguous; add Z or an offset, "
            f"like {EXAMPLE_INSTANT} or 2026-12-07T09:00:00-05:00",
        )
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        instant = None
    # Far-off years are typos, and arithmetic near year 1 or 9999 (buffers, windows) overflows.
    if instant is None or not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise InvalidInput("invalid_time", f"{field} {text!r} is out of range; use a date between years {MIN_YEAR} and {MAX_YEAR}")
    return instant


def _as_utc(dt: Any, name: str) -> datetime:
    """Aware datetime -> the same instant in UTC; naive datetimes are a caller bug we refuse loudly."""
    if dt.__class__ is datetime and dt.tzinfo is UTC:
        return dt  # already UTC (what the database and this module hand around): nothing to check
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(
            "invalid_time", f"{name} {dt!r} must be a timezone-aware datetime, like {EXAMPLE_INSTANT}"
        )
    return dt.astimezone(UTC)


def _as_interval(interval: Sequence[datetime], name: str = "busy interval") -> Interval:
    start, end = interval
    return _as_utc(start, name), _as_utc(end, name)


# --------------------------------------------------------------------------------------------
# Local wall time -> instants, DST aware
# --------------------------------------------------------------------------------------------


def _wall(day: date, minute: int) -> datetime:
    """Naive local wall time `minute` minutes after `day`'s midnight (1440 -> next midnight).

    Naive arithmetic is wall-clock arithmetic, which is what the grid steps in.
    """
    return datetime.combine(day, time()) + timedelta(minutes=minute)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The first occurrence (fold=0) of a local wall time, or None when it falls in a gap."""
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    # A gap time does not survive the round trip: 02:30 on spring-forward day comes back as 03:30.
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def _bound_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A window bound as an instant; a bound inside a gap is the instant the clocks jump."""
    instant = _wall_to_utc(wall, zone)
    return instant if instant is not None else _gap_transition(wall, zone)


def _gap_transition(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of the transition that skipped `wall`.

    Read with either offset, a gap time lands on either side of the jump; bisect between the two
    on whole seconds (zone transitions are on whole seconds). Runs only for window bounds that
    sit in a gap, so its ~12 steps cost nothing in practice.
    """
    readings = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    low, high = (int(r.timestamp()) for r in readings)
    after_offset = readings[1].astimezone(zone).utcoffset()
    # Invariant: `high` already has the post-jump offset, `low` does not.
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --------------------------------------------------------------------------------------------
# Opening windows and the grid
# --------------------------------------------------------------------------------------------


class OpenWindow(NamedTuple):
    """One opening window of one local day, as wall minutes and as real instants."""

    day: date
    start_minute: int
    end_minute: int
    start: datetime  # aware UTC
    end: datetime  # aware UTC

    def describe(self) -> str:
        return f"{_format_clock(self.start_minute)}-{_format_clock(self.end_minute)}"


def hours_for(rules: SlotRules, day: date) -> tuple[MinuteWindow, ...]:
    """The opening hours of a local day: its exception when it has one, else its weekday's."""
    if day in rules._exception_minutes:
        return rules._exception_minutes[day]
    return rules._weekly_minutes[day.weekday()]


def opening_windows(rules: SlotRules, day: date) -> list[OpenWindow]:
    """The opening windows of a local day with their real (UTC) bounds."""
    zone = rules.zone
    return [
        OpenWindow(day, start, end, _bound_to_utc(_wall(day, start), zone), _bound_to_utc(_wall(day, end), zone))
        for start, end in hours_for(rules, day)
    ]


def _window_grid(rules: SlotRules, window: OpenWindow) -> list[datetime]:
    """The grid starts of one window whose whole slot fits inside it, in increasing order."""
    span = window.end_minute - window.start_minute
    if window.end - window.start == timedelta(minutes=span):
        # Real time elapsed across the window equals its wall time: no clock change inside it
        # (a change moves the two apart by its size; both bounds were read with fold=0, so a
        # bound in a gap reads as the jump's instant and also shows up here). Then every grid
        # wall time maps to the window's start plus the same minutes of real time, with no
        # zone lookups per slot.
        first = window.start
        return [first + offset for offset in _grid_offsets(span - rules.duration_minutes, rules.interval_minutes)]
    return list(_window_grid_by_wall(rules, window))


@lru_cache(maxsize=256)
def _grid_offsets(room: int, step: int) -> tuple[timedelta, ...]:
    """0, step, 2*step, ... minutes up to `room` (the last start whose slot still fits)."""
    return tuple(timedelta(minutes=m) for m in range(0, room + 1, step)) if room >= 0 else ()


def _window_grid_by_wall(rules: SlotRules, window: OpenWindow) -> Iterator[datetime]:
    """The grid of a window with a clock change inside it: each wall time read in the zone."""
    duration = timedelta(minutes=rules.duration_minutes)
    for minute in range(window.start_minute, window.end_minute, rules.interval_minutes):
        start = _wall_to_utc(_wall(window.day, minute), rules.zone)
        if start is None:
            continue  # spring-forward gap: this wall time never happens
        if start < window.start:
            continue  # defensive; fold=0 starts never precede the window's own start
        if start + duration > window.end:
            # fold=0 readings increase with wall time, so no later grid start fits either.
            break
        yield start


def _day_starts(rules: SlotRules, day: date) -> list[datetime]:
    """Every grid start of a local day, sorted, without duplicates from overlapping windows."""
    windows = opening_windows(rules, day)
    if len(windows) == 1:
        return _window_grid(rules, windows[0])  # one window's grid is sorted and distinct
    starts: set[datetime] = set()
    for window in windows:
        starts.update(_window_grid(rules, window))
    return sorted(starts)


def _local_days(rules: SlotRules, start: datetime, end: datetime) -> Iterator[date]:
    """The page's local days that overlap [start, end)."""
    day = start.astimezone(rules.zone).date()
    last = end.astimezone(rules.zone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Public engine
# --------------------------------------------------------------------------------------------


def block_of(rules: SlotRules, start: datetime) -> Interval:
    """The time a session at `start` keeps the owner busy: its buffers around its duration."""
    start = _as_utc(start, "slot")
    return (
        start - timedelta(minutes=rules.buffer_before_minutes),
        start + timedelta(minutes=rules.duration_minutes + rules.buffer_after_minutes),
    )


def blocks_overlap(a: Interval, b: Interval) -> bool:
    """Half-open overlap: touching intervals do not overlap, and an empty interval overlaps nothing."""
    return a[0] < a[1] and b[0] < b[1] and a[0] < b[1] and b[0] < a[1]


def candidate_starts(rules: SlotRules, window_start: datetime, window_end: datetime) -> list[datetime]:
    """Every grid start in [window_start, window_end) whose whole slot fits an opening window.

    Ignores `now`, notice and busy times; `free_slots` applies those.
    """
    low, high = _as_utc(window_start, "window_start"), _as_utc(window_end, "window_end")
    if high <= low:
        return []
    starts: list[datetime] = []
    # Local days are visited in order and each day's starts lie inside that day, so the
    # concatenation is already sorted and duplicate-free; only its two ends need cutting.
    for day in _local_days(rules, low, high):
        starts.extend(_day_starts(rules, day))
    return starts[bisect_left(starts, low):bisect_left(starts, high)]


class BusyIndex:
    """Busy intervals sorted once, answering "does this block overlap any?" in O(log n).

    Sorted by start, the intervals that begin before a block ends are a prefix; one of them
    overlaps the block exactly when the largest end in that prefix is after the block's start.
    """

    def __init__(self, busy: Iterable[Sequence[datetime]]):
        intervals = sorted(i for i in (_as_interval(b) for b in busy) if i[0] < i[1])
        self._starts = [start for start, _ in intervals]
        self._max_end = list(accumulate((end for _, end in intervals), max))

    def overlaps(self, block: Interval) -> bool:
        start, end = block
        if start >= end:
            return False
        begun = bisect_left(self._starts, end)  # intervals starting strictly before the block ends
        return begun > 0 and self._max_end[begun - 1] > start


def free_slots(
    rules: SlotRules,
    window_start: datetime,
    window_end: datetime,
    *,
    now: datetime,
    busy: Sequence[Interval],
) -> list[datetime]:
    """Bookable starts in [window_start, window_end): on the grid, after the minimum notice, and
    whose block (with buffers) overlaps no busy interval. Sorted, aware UTC."""
    earliest = _as_utc(now, "now") + timedelta(minutes=rules.min_notice_minutes)
    candidates = candidate_starts(rules, window_start, window_end)
    candidates = candidates[bisect_left(candidates, earliest):]
    merged = _merge_busy(busy)
    # One pass over the sorted candidates and the sorted, disjoint busy blocks: the blocks of
    # successive candidates move forward in time, so a busy block that ends before one
    # candidate's block begins can be passed for good.
    before = timedelta(minutes=rules.buffer_before_minutes)
    after = timedelta(minutes=rules.duration_minutes + rules.buffer_after_minutes)
    free: list[datetime] = []
    i, n = 0, len(merged)
    for start in candidates:
        block_start = start - before
        while i < n and merged[i][1] <= block_start:
            i += 1
        if i < n and merged[i][0] < start + after:
            continue
        free.append(start)
    return free


def _merge_busy(busy: Iterable[Sequence[datetime]]) -> list[list[datetime]]:
    """Busy intervals as UTC, empty ones dropped, sorted, overlapping or touching ones joined:
    a block overlaps the union exactly when it overlaps one of the intervals."""
    intervals = sorted(i for i in (_as_interval(b) for b in busy) if i[0] < i[1])
    merged: list[list[datetime]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([start, end])
    return merged


def check_slot(rules: SlotRules, start: datetime, *, now: datetime, busy: Sequence[Interval],
               anytime: bool = False) -> None:
    """Raise the first reason `start` cannot be booked; return None when it can.

    Order: slot_in_past, slot_too_soon, slot_outside_availability, slot_off_grid, slot_unavailable
    (cheap and customer-fixable reasons first; the busy check last because it can change).
    `anytime` is the administrator's move ("policies do not bind the admin"): minimum notice,
    opening hours and the slot grid are skipped; the past and the owner's busy times never are.
    """
    start, now = _as_utc(start, "slot"), _as_utc(now, "now")
    _check_not_past(start, now)
    if not anytime:
        _check_notice(rules, start, now)
        day = start.astimezone(rules.zone).date()
        _check_inside_hours(rules, start, day)
        _check_on_grid(rules, start, day)
    _check_free(rules, start, busy)


def _check_not_past(start: datetime, now: datetime) -> None:
    if start < now:
        raise OperationFailed(
            "slot_in_past",
            f"slot {to_utc_iso(start)} is in the past (it is now {to_utc_iso(now)}); "
            f"pick a future time — {SLOTS_HINT}",
        )


def _check_notice(rules: SlotRules, start: datetime, now: datetime) -> None:
    earliest = now + timedelta(minutes=rules.min_notice_minutes)
    if start < earliest:
        raise OperationFailed(
            "slot_too_soon",
            f"slot {to_utc_iso(start)} is too soon: this event needs {_describe_minutes(rules.min_notice_minutes)} "
            f"notice, so the earliest start is {to_utc_iso(earliest)}; pick a later time — {SLOTS_HINT}",
        )


def _check_inside_hours(rules: SlotRules, start: datetime, day: date) -> None:
    end = start + timedelta(minutes=rules.duration_minutes)
    windows = opening_windows(rules, day)
    if any(w.start <= start and end <= w.end for w in windows):
        return
    hours = ", ".join(w.describe() for w in windows) or "closed"
    raise InvalidInput(
        "slot_outside_availability",
        f"slot {to_utc_iso(start)} ({_describe_local(rules, start)}, {rules.duration_minutes} minutes) "
        f"is outside the opening hours of {day.isoformat()} ({hours}, {rules.timezone}); "
        f"pick a time inside them — {SLOTS_HINT}",
    )


def _check_on_grid(rules: SlotRules, start: datetime, day: date) -> None:
    starts = _day_starts(rules, day)
    position = bisect_left(starts, start)
    if position < len(starts) and starts[position] == start:
        return
    nearest = [starts[i] for i in (position - 1, position) if 0 <= i < len(starts)]
    offer = " or ".join(to_utc_iso(s) for s in nearest) or "none on this day"
    raise InvalidInput(
        "slot_off_grid",
        f"slot {to_utc_iso(start)} ({_describe_local(rules, start)}) is inside opening hours but not on the "
        f"{rules.interval_minutes}-minute grid; the nearest valid starts are {offer} — {SLOTS_HINT}",
    )


def _check_free(rules: SlotRules, start: datetime, busy: Sequence[Interval]) -> None:
    block = block_of(rules, start)
    # One slot: a linear scan is cheaper than sorting. The message does not name the other
    # booking, since it may belong to another customer.
    if any(blocks_overlap(block, _as_interval(b)) for b in busy):
        raise OperationFailed(
            "slot_unavailable",
            f"slot {to_utc_iso(start)} is no longer free: it (with its buffers) overlaps another session "
            f"or a busy time; pick another time — {SLOTS_HINT}",
        )


def _describe_local(rules: SlotRules, instant: datetime) -> str:
    local = instant.astimezone(rules.zone)
    return f"{local:%a %Y-%m-%d %H:%M} {rules.timezone}"


def _describe_minutes(minutes: int) -> str:
    """240 -> '240 minutes (4 hours)'; the hours help when notice is configured in minutes."""
    text = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if minutes >= 60 and minutes % 60 == 0:
        hours = minutes // 60
        text += f" ({hours} hour{'s' if hours != 1 else ''})"
    return text
