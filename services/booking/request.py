"""The booking request: its schema (pydantic) and its validation against the catalog.

`parse_request` checks what needs no database (shape, counts against nothing, emails, zones);
`plan_booking` checks the rest (slugs, the package size, each slot free and on the grid).
Each problem has its own stable error code.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Sequence
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from ..availability import Interval, block_of, blocks_overlap, check_slot, parse_instant, to_utc_iso
from ..errors import InvalidInput, OperationFailed
from ..limits import check_limits
from ..scheduling import BusySource, Offering, owner_busy, resolve_offering, session_busy, slot_rules

MAX_SESSIONS = 20
# Every string of a request is bounded, so nothing a sender makes up is stored or echoed in full
# (an error message quotes at most these lengths). IANA zone names are at most 32 characters
# today; an ISO 8601 time with an offset and microseconds is 32.
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 320  # RFC 3696 (with its errata): 64 + 1 + 255
MAX_TIMEZONE_LENGTH = 64
MAX_SLOT_LENGTH = 64
Slot = Annotated[str, StringConstraints(max_length=MAX_SLOT_LENGTH)]


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    email: str = Field(max_length=MAX_EMAIL_LENGTH)
    timezone: str = Field("UTC", min_length=1, max_length=MAX_TIMEZONE_LENGTH)


class BookingRequest(BaseModel):
    """The contract's booking request. Unknown keys are refused so typos are not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    request_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")
    booking_page: str = Field(min_length=1, max_length=64)
    event_type: str | None = Field(default=None, max_length=64)
    customer: CustomerIn
    slots: list[Slot] = Field(max_length=100)
    payment_method: str | None = Field(default=None, max_length=200)

    @field_validator("slots", mode="before")
    @classmethod
    def _slots_are_strings(cls, value: Any) -> Any:
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ValueError("every slot must be an ISO 8601 string such as '2026-12-07T14:00:00Z'")
        return value


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "request"
    return where, err["msg"].removeprefix("Value error, ")


def _nul_path(value: Any, path: str = "request") -> str | None:
    """Where a NUL character hides in the request, if anywhere (no database text can hold one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return path
        found = _nul_path(item, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return None


def parse_request(data: Any) -> tuple[BookingRequest, list[datetime]]:
    """Shape, emails, timezones and slot syntax. Returns the request and its slots as UTC."""
    if not isinstance(data, dict):
        raise InvalidInput("invalid_request", "the booking request must be a JSON object; see CONTRACT.md")
    try:
        request = BookingRequest.model_validate(data)
    except ValidationError as exc:
        where, message = _first_error(exc)
        code = "missing_request_id" if where == "request_id" and "required" in message.lower() else "invalid_request"
        raise InvalidInput(code, f"{where}: {message}")
    # Checked on the validated (size-limited) request: walking raw input could be a YAML bomb.
    where = _nul_path(request.model_dump(), "request")
    if where:
        raise InvalidInput("invalid_request", f"{where} contains a NUL character; remove it")
    try:
        from email_validator import EmailNotValidError, validate_email

        request.customer.email = validate_email(request.customer.email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("invalid_email", f"customer.email {request.customer.email!r} is not a valid address: {exc}")
    if any(ch in request.customer.name for ch in "\r\n\x00"):
        raise InvalidInput("invalid_request", "customer.name must be one line (no line breaks)")
    try:
        ZoneInfo(request.customer.timezone)
    except Exception:
        raise InvalidInput("invalid_timezone", f"customer.timezone {request.customer.timezone!r} is not a known timezone; use an IANA name like Europe/Berlin")
    if not 1 <= len(request.slots) <= MAX_SESSIONS:
        raise InvalidInput("wrong_session_count", f"slots holds {len(request.slots)} times; a booking has 1 to {MAX_SESSIONS} sessions")
    starts = [parse_instant(s, field=f"slots[{i}]") for i, s in enumerate(request.slots)]
    seen: dict[datetime, int] = {}
    for i, start in enumerate(starts):
        if start in seen:
            raise InvalidInput("duplicate_slot", f"slots[{i}] {to_utc_iso(start)} repeats slots[{seen[start]}]; each session needs its own time")
        seen[start] = i
    return request, starts


@dataclass(frozen=True)
class BookingPlan:
    """A validated request, ready to hold."""

    request: BookingRequest
    offering: Offering
    starts: list[datetime]  # sorted, UTC
    blocks: list[Interval]
    duration: timedelta
    owner_id: str  # kept apart from `offering`, whose rows expire when a transaction rolls back


def check_against_catalog(db, request: BookingRequest, starts: Sequence[datetime]) -> Offering:
    """Slugs, package size and payment method: everything but the slots' times."""
    offering = resolve_offering(db, request.booking_page, request.event_type)
    et = offering.event_type
    if len(starts) != et.sessions_per_booking:
        kind = "a session package of" if et.sessions_per_booking > 1 else "a single session:"
        raise InvalidInput(
            "wrong_session_count",
            f"{request.booking_page}/{et.slug or '-'} is {kind} {et.sessions_per_booking} session(s); "
            f"slots must hold exactly {et.sessions_per_booking} times, not {len(starts)}",
        )
    if et.price_cents and not request.payment_method:
        raise InvalidInput("payment_method_required", f"{et.name} costs {et.price_cents / 100:.2f} {et.currency}; give a payment_method (a Stripe PaymentMethod id)")
    return offering


def plan_booking(db, request: BookingRequest, starts: Sequence[datetime], *, now: datetime,
                 extra_busy: BusySource | None = None) -> BookingPlan:
    """Validate the whole request against the catalog and current bookings."""
    offering = check_against_catalog(db, request, starts)
    rules = slot_rules(offering.page, offering.event_type)
    ordered = sorted(starts)
    blocks = [block_of(rules, s) for s in ordered]
    for a, b in zip(blocks, blocks[1:]):
        if blocks_overlap(a, b):
            first, second = ordered[blocks.index(a)], ordered[blocks.index(b)]
            raise InvalidInput(
                "overlapping_slots",
                f"slots {to_utc_iso(first)} and {to_utc_iso(second)} overlap (with a {rules.duration_minutes}-minute "
                f"duration and buffers); choose times at least that far apart",
            )
    busy = owner_busy(db, offering.owner, blocks[0][0] - timedelta(days=1), blocks[-1][1] + timedelta(days=1), extra=extra_busy)
    for start in ordered:
        check_slot(rules, start, now=now, busy=busy)
        check_limits(db, offering.event_type, offering.owner.timezone, start)
    return BookingPlan(request=request, offering=offering, starts=ordered, blocks=blocks,
                       duration=timedelta(minutes=rules.duration_minutes), owner_id=offering.owner.id)


def conflicting_slot(db, plan: BookingPlan) -> str:
    """After the database refused the hold: name the first slot that is now taken."""
    busy = session_busy(db, plan.owner_id, plan.blocks[0][0], plan.blocks[-1][1])
    for start, block in zip(plan.starts, plan.blocks):
        if any(blocks_overlap(block, b) for b in busy):
            return to_utc_iso(start)
    return to_utc_iso(plan.starts[0])


def slot_taken(slot_iso: str) -> OperationFailed:
    return OperationFailed("slot_unavailable", f"slot {slot_iso} was just taken by another booking; pick another time (`sessionpack slots`)")
