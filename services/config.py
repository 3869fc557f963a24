"""`sessionpack config apply`: validate a configuration file and upsert it, all or nothing.

Validation happens in two layers. Pydantic checks the shape of each object (types, ranges,
unknown keys); `_check_rules` then checks what spans settings (the session-package rules,
references between objects, duplicates). Every problem found is reported at once, each line
naming the object and the settings in conflict, and nothing is written unless all is well.
"""
from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidInput
from .currency import currency_units
from .money import parse_amount
from .webhooks import check_endpoints

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROVIDERS = ("zoom", "gotomeeting", "webex", "jitsi", "builtin", "none")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _check_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'America/New_York'")
    ZoneInfo(value)
    return value


_ZONES: set[str] | None = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    return _ZONES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


Hours = list[tuple[str, str]]


def _check_hours(hours: Hours) -> Hours:
    for start, end in hours:
        for value in (start, end):
            if not _HHMM.match(value):
                raise ValueError(f"time {value!r} must be HH:MM (24-hour), like '09:00'")
        if _minutes(end) <= _minutes(start):
            raise ValueError(f"opening hours {start}-{end} end before they start")
    ordered = sorted(hours, key=lambda h: _minutes(h[0]))
    for (_, end), (start, _) in zip(ordered, ordered[1:]):
        if _minutes(start) < _minutes(end):
            raise ValueError(f"opening hours overlap around {start}; merge them")
    return hours


class DateException(_Strict):
    date: date
    hours: Hours = Field(default_factory=list)

    _hours = field_validator("hours")(_check_hours)


class Availability(_Strict):
    weekly: dict[str, Hours] = Field(default_factory=dict)
    exceptions: list[DateException] = Field(default_factory=list)

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: dict[str, Hours]) -> dict[str, Hours]:
        for day, hours in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}; use one of {', '.join(WEEKDAYS)}")
            _check_hours(hours)
        return value


class Scheduling(_Strict):
    booking_mode: Literal["automatic", "manual"] = "automatic"
    sessions_per_booking: int = 1
    pooled_availability: bool = False
    max_bookings_per_day: int | None = Field(default=None, ge=1)
    max_bookings_per_week: int | None = Field(default=None, ge=1)
    min_notice_minutes: int = Field(default=0, ge=0)
    buffer_before_minutes: int = Field(default=0, ge=0, le=1440)
    buffer_after_minutes: int = Field(default=0, ge=0, le=1440)
    slot_interval_minutes: int | None = Field(default=None, ge=5, le=1440)
    approval_expiry_hours: float | None = Field(default=None, gt=0)


class Conferencing(_Strict):
    provider: Literal["zoom", "gotomeeting", "webex", "jitsi", "builtin", "none"] = "none"
    # Where an in-person session (`none`) takes place, shown on the meeting page.
    location: str | None = Field(default=None, max_length=500)


class Payment(_Strict):
    price: str | int | float
    currency: str = "USD"

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError(f"currency {value!r} must be a 3-letter ISO code like 'USD'")
        return value.upper()


class CancelPolicy(_Strict):
    allowed: bool = True
    min_notice_hours: float = Field(default=0, ge=0)
    refund_percent: float = 100
    # The customer must say why they cancel (the manage page's reason field; the task refuses too).
    reason_required: bool = False


class ReschedulePolicy(_Strict):
    allowed: bool = True
    min_notice_hours: float = Field(default=0, ge=0)
    fee_percent: float = 0


class Policies(_Strict):
    cancel: CancelPolicy = Field(default_factory=CancelPolicy)
    reschedule: ReschedulePolicy = Field(default_factory=ReschedulePolicy)


class ReminderSpec(_Strict):
    before_minutes: int = Field(gt=0, le=60 * 24 * 30)
    notify_owner: bool = False


class Offering(_Strict):
    """The fields an event type has and a page without event types carries itself."""

    duration_minutes: int | None = Field(default=None, ge=5, le=24 * 60)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    conferencing: Conferencing = Field(default_factory=Conferencing)
    policies: Policies = Field(default_factory=Policies)
    reminders: list[ReminderSpec] = Field(default_factory=list)


class EventTypeConfig(Offering):
    slug: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1, max_length=200)
    payment: Payment | None = None


class CalendarConfig(_Strict):
    caldav_url: str = Field(pattern=r"^https?://")
    username: str
    password_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class OwnerConfig(_Strict):
    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1, max_length=200)
    email: str
    timezone: str
    calendar: CalendarConfig | None = None

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        from email_validator import EmailNotValidError, validate_email

        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"invalid email {value!r}: {exc}") from None


class BookingPageConfig(Offering):
    slug: str = Field(pattern=_SLUG)
    owner: str
    name: str = Field(min_length=1, max_length=200)
    timezone: str
    availability: Availability = Field(default_factory=Availability)
    event_types: list[EventTypeConfig] = Field(default_factory=list)
    # Accepted only to refuse it with a clear message: payment belongs to event types.
    payment: Payment | None = None
    # Outgoing webhooks, checked by `services.webhooks.check_endpoints` (unknown event types refused).
    webhooks: list[Any] | None = None

    _tz = field_validator("timezone")(_check_timezone)


class ConfigFile(_Strict):
    owners: list[OwnerConfig] = Field(default_factory=list)
    booking_pages: list[BookingPageConfig] = Field(default_factory=list)


# -- loading --------------------------------------------------------------------------------------


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML file (by extension; YAML parses JSON too) into a dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("config_unreadable", f"cannot read {path}: {exc.strerror}; check the path")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput("config_unparsable", f"{path} is not valid JSON/YAML: {exc}")
    except RecursionError:
        raise InvalidInput("config_unparsable", f"{path} is nested too deeply to be a configuration file")
    if not isinstance(data, dict):
        raise InvalidInput("config_invalid", f"{path} must hold an object with 'owners' and 'booking_pages'")
    return data


def _format_loc(data: dict[str, Any], loc: tuple) -> str:
    """('booking_pages', 0, 'event_types', 1, 'scheduling', 'x') -> readable path with slugs."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("slug") or node[item].get("id")
                if ident:
                    label = f"[{item}]({ident})"
            parts[-1] = parts[-1] + label if parts else label
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_config(data: dict[str, Any]) -> ConfigFile:
    """Validate shape and rules; raise one InvalidInput listing every problem."""
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_format_loc(data, err['loc'])}: {message}")
        raise InvalidInput("config_invalid", _summary(problems), problems=problems)
    problems = check_rules(config)
    if problems:
        raise InvalidInput(
            "config_rule_conflict" if any("requires" in p or "cannot" in p for p in problems) else "config_invalid",
            _summary(problems), problems=problems,
        )
    return config


def _summary(problems: list[str]) -> str:
    head = f"configuration refused, nothing was written ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"
    return "\n".join([head, *(f"  - {p}" for p in problems)])


def _offering_rules(where: str, offering: Offering, has_payment: bool) -> list[str]:
    """The session-package rules and ranges for one event type (or directly booked page)."""
    problems = []
    s = offering.scheduling
    if not 1 <= s.sessions_per_booking <= 20:
        problems.append(f"{where}: scheduling.sessions_per_booking is {s.sessions_per_booking}; it must be 1..20")
    if s.sessions_per_booking > 1:
        package = f"{where}: a session package (scheduling.sessions_per_booking: {s.sessions_per_booking})"
        if s.booking_mode != "automatic":
            problems.append(f"{package} requires scheduling.booking_mode: automatic, not {s.booking_mode}")
        if s.pooled_availability:
            problems.append(f"{package} cannot use scheduling.pooled_availability: true")
        if s.max_bookings_per_day is not None:
            problems.append(f"{package} cannot have scheduling.max_bookings_per_day ({s.max_bookings_per_day}); set it to null")
        if s.max_bookings_per_week is not None:
            problems.append(f"{package} cannot have scheduling.max_bookings_per_week ({s.max_bookings_per_week}); set it to null")
    if has_payment and s.booking_mode != "automatic":
        problems.append(f"{where}: payment requires scheduling.booking_mode: automatic (payment is taken at booking), not {s.booking_mode}")
    for name, value in (("policies.cancel.refund_percent", offering.policies.cancel.refund_percent),
                        ("policies.reschedule.fee_percent", offering.policies.reschedule.fee_percent)):
        if not 0 <= value <= 100:
            problems.append(f"{where}: {name} is {value:g}; percentages must be 0..100")
    if offering.duration_minutes is None:
        problems.append(f"{where}: duration_minutes is required")
    offsets = [r.before_minutes for r in offering.reminders]
    if len(offsets) != len(set(offsets)):
        problems.append(f"{where}: reminders repeat the same before_minutes; list each offset once")
    return problems


def check_rules(config: ConfigFile, known_owner_ids: set[str] | None = None) -> list[str]:
    """Cross-setting rules, references and duplicates. Returns readable problem lines."""
    problems: list[str] = []
    owner_ids = [o.id for o in config.owners]
    for dup in sorted({i for i in owner_ids if owner_ids.count(i) > 1}):
        problems.append(f"owners: duplicate id {dup!r}; each owner id must be unique")
    page_slugs = [p.slug for p in config.booking_pages]
    for dup in sorted({s for s in page_slugs if page_slugs.count(s) > 1}):
        problems.append(f"booking_pages: duplicate slug {dup!r}; each booking page slug must be unique")
    known = set(owner_ids) | (known_owner_ids or set())
    for i, page in enumerate(config.booking_pages):
        where = f"booking_pages[{i}]({page.slug})"
        if known_owner_ids is not None and page.owner not in known:
            problems.append(f"{where}: owner {page.owner!r} is unknown; add it to 'owners' or fix the id")
        if page.payment is not None:
            problems.append(f"{where}: payment is allowed on event types only; move it into an event type")
        problems += check_endpoints(page.webhooks, where)
        if page.event_types:
            slugs = [e.slug for e in page.event_types]
            for dup in sorted({s for s in slugs if slugs.count(s) > 1}):
                problems.append(f"{where}: duplicate event type slug {dup!r}")
            for j, et in enumerate(page.event_types):
                ewhere = f"{where}.event_types[{j}]({et.slug})"
                problems += _offering_rules(ewhere, et, et.payment is not None)
                if et.payment is not None:
                    try:
                        currency_units(et.payment.currency, setting="payment.currency")
                        parse_amount(et.payment.price, et.payment.currency, field="payment.price")
                    except InvalidInput as exc:
                        problems.append(f"{ewhere}: {exc.message}")
        else:
            problems += _offering_rules(where, page, False)
    return problems


# -- applying -------------------------------------------------------------------------------------


def apply_config(uow, data: dict[str, Any]) -> dict[str, Any]:
    """Validate and upsert owners, pages and event types by id/slug in the unit of work.

    Event types that a page no longer lists are deactivated, not deleted: existing bookings
    keep pointing at them (and keep their own snapshot of the terms). Returns a summary.
    """
    from models import BookingPage, EventType, Owner

    config = parse_config(data)
    db = uow.db
    existing_owner_ids = {o for (o,) in db.query(Owner.id).all()}
    problems = check_rules(config, known_owner_ids=existing_owner_ids)
    if problems:
        raise InvalidInput("config_invalid", _summary(problems), problems=problems)

    for oc in config.owners:
        owner = db.get(Owner, oc.id) or Owner(id=oc.id)
        owner.name, owner.email, owner.timezone = oc.name, oc.email, oc.timezone
        owner.calendar = oc.calendar.model_dump() if oc.calendar else None
        db.add(owner)
    db.flush()

    counts = {"owners": len(config.owners), "booking_pages": 0, "event_types": 0}
    for pc in config.booking_pages:
        page = db.get(BookingPage, pc.slug) or BookingPage(slug=pc.slug)
        page.owner_id, page.name, page.timezone = pc.owner, pc.name, pc.timezone
        page.availability = pc.availability.model_dump(mode="json")
        page.has_event_types = bool(pc.event_types)
        page.webhooks = [dict(ep) for ep in pc.webhooks] if pc.webhooks else None
        db.add(page)
        db.flush()
        counts["booking_pages"] += 1
        offerings = [(et.slug, et.name, et, et.payment) for et in pc.event_types] or [("", pc.name, pc, None)]
        keep = set()
        for slug, name, offering, payment in offerings:
            row = db.query(EventType).filter_by(page_slug=pc.slug, slug=slug).one_or_none()
            row = row or EventType(page_slug=pc.slug, slug=slug)
            _fill_event_type(row, name, offering, payment)
            db.add(row)
            keep.add(slug)
            counts["event_types"] += 1
        for row in db.query(EventType).filter_by(page_slug=pc.slug):
            if row.slug not in keep:
                row.active = False
    uow.record("config.applied", actor="admin", **counts)
    return counts


def _fill_event_type(row, name: str, offering: Offering, payment: Payment | None) -> None:
    s = offering.scheduling
    row.name, row.active = name, True
    row.duration_minutes = offering.duration_minutes
    row.booking_mode = s.booking_mode
    row.sessions_per_booking = s.sessions_per_booking
    row.pooled_availability = s.pooled_availability
    row.max_bookings_per_day = s.max_bookings_per_day
    row.max_bookings_per_week = s.max_bookings_per_week
    row.min_notice_minutes = s.min_notice_minutes
    row.buffer_before_minutes = s.buffer_before_minutes
    row.buffer_after_minutes = s.buffer_after_minutes
    row.slot_interval_minutes = s.slot_interval_minutes
    row.conferencing_provider = offering.conferencing.provider
    if payment is not None:
        row.currency = payment.currency
        row.price_cents = parse_amount(payment.price, payment.currency, field="payment.price")
    else:
        row.currency, row.price_cents = None, None
    row.policies = offering.policies.model_dump()
    row.policies["approval_expiry_hours"] = s.approval_expiry_hours
    # Shown on the meeting page of an in-person (`none`) session; read live, like opening hours.
    row.policies["conferencing_location"] = offering.conferencing.location
    row.reminders = [r.model_dump() for r in offering.reminders]
