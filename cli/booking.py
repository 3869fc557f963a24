"""`sessionpack book`, `show` and `activity`: a booking request in; the booking object and the
activity stream out."""
from __future__ import annotations

import sys

import click

from .common import container, emit, ensure_schema, read_json_or_yaml, reporting, say, wait_for


FIRST_FREE_DAYS = 60


def _first_free(c, data) -> dict:
    """The request with `slots` set to the first free start times of its event type, one a day
    from tomorrow (so a package's sessions never overlap), and a new `request_id` when it has none:
    `book --first-free` takes a request file written once, such as examples/request-demo.json."""
    import secrets
    from datetime import timedelta

    from services.errors import InvalidInput, OperationFailed
    from services.scheduling import list_slots, resolve_offering

    if not isinstance(data, dict):
        raise InvalidInput("invalid_request", "the booking request must be a JSON object")
    page, event_type = data.get("booking_page"), data.get("event_type")
    target = f"{page}/{event_type}" if event_type else f"{page}"
    first = (c.clock() + timedelta(days=1)).date()
    with c.session_factory() as db:
        wanted = resolve_offering(db, page, event_type).event_type.sessions_per_booking
        free = list_slots(db, target, first.isoformat(), (first + timedelta(days=FIRST_FREE_DAYS)).isoformat(), "UTC",
                          now=c.clock(), extra_busy=c.busy_source)
    chosen, days = [], set()
    for slot in free:
        if slot[:10] not in days:
            chosen.append(slot)
            days.add(slot[:10])
    if len(chosen) < wanted:
        raise OperationFailed("no_free_slots", f"{target} has free times on {len(chosen)} day(s) in the next "
                              f"{FIRST_FREE_DAYS} days; {wanted} are needed (`sessionpack slots {target}` lists them)")
    return {**data, "request_id": data.get("request_id") or f"cli-{secrets.token_hex(6)}", "slots": chosen[:wanted]}


@click.command(epilog="""\b
The request (JSON or YAML):
  request_id      your idempotency key: the same request sent twice makes one booking, one charge
  booking_page    the page's slug, e.g. "demo"
  event_type      the event type's slug, e.g. "package-3" (left out for a page without event types)
  customer        {"name", "email", "timezone" (IANA, e.g. "Europe/Berlin")}
  slots           exactly sessions_per_booking free start times, ISO 8601 with an offset
                  ("2026-12-07T14:00:00Z"); `sessionpack slots PAGE/EVENT_TYPE` lists them
  payment_method  a Stripe PaymentMethod id (e.g. pm_card_visa), required when the event type has a price

\b
Example: sessionpack book examples/request-demo.json --first-free --wait 60
See docs/booking-request.md.""")
@click.argument("source")
@click.option("--wait", type=float, default=None, help="wait up to SECONDS for a final status")
@click.option("--first-free", is_flag=True,
              help="fill slots with the first free start times (one a day, from tomorrow), and request_id "
                   "with a new one when the file has none")
@reporting
def book(source: str, wait: float | None, first_free: bool) -> None:
    """Enqueue the booking request in SOURCE (a file, or - for stdin); prints {"booking_id", "status"},
    or with --wait the booking object once it is final.

    The request is validated, then stored with its publication in one transaction before the
    answer (persist, then publish): a broker that forgets it loses nothing, beat publishes it
    again. The same request_id with the same body answers the same booking; with another body,
    `request_id_reused` (exit 2)."""
    from services.booking.intake import accept_booking_request, publish_again, published

    data = read_json_or_yaml(source)
    c = container()
    ensure_schema(c)
    if first_free:
        data = _first_free(c, data)
        say(f"slots: {', '.join(data['slots'])}; request_id: {data['request_id']}")
    booking_id, status, created = accept_booking_request(c, data, source="cli")
    unsent = created and not published(c, booking_id)
    if unsent:
        say(f"the broker did not take the request now; it is stored as {booking_id} and will be sent once the "
            "broker answers (beat's outbox sweep, or this command while it waits); check BROKER_URL and that "
            "the broker runs")
    if wait is None:
        emit({"booking_id": booking_id, "status": status})
        return
    nudge = (lambda: publish_again(c, booking_id)) if unsent else None
    result = wait_for(c, booking_id, wait, lambda b: b.status != "pending", nudge=nudge)
    if result is None:
        say(f"booking {booking_id} is still pending after {wait:g}s; check later with `sessionpack show {booking_id}`")
        emit({"booking_id": booking_id, "status": "pending"})
        sys.exit(1)
    emit(result)
    if result["status"] == "failed":
        sys.exit(1)


@click.command()
@click.argument("booking_id")
@reporting
def show(booking_id: str) -> None:
    """The booking object."""
    from services.booking.intake import find_booking_object
    from services.errors import NotFound

    c = container()
    ensure_schema(c)
    with c.session_factory() as db:
        # An accepted request no worker has started yet answers `pending`.
        shown = find_booking_object(db, booking_id, c.settings)
    if shown is None:
        raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id (the `booking_id` "
                                          "that `book` printed)")
    emit(shown)


@click.command()
@click.option("--booking", "booking_id", default=None)
@click.option("--limit", type=click.IntRange(1, 10000), default=50)
@reporting
def activity(booking_id: str | None, limit: int) -> None:
    """The activity stream, newest first."""
    from sqlalchemy import select

    from models import Activity
    from services.booking.views import activity_entry

    c = container()
    ensure_schema(c)
    with c.session_factory() as db:
        query = select(Activity).order_by(Activity.id.desc()).limit(limit)
        if booking_id:
            query = query.where(Activity.booking_id == booking_id)
        emit({"activity": [activity_entry(a) for a in db.execute(query).scalars()]})


def register(main: click.Group) -> None:
    for command in (book, show, activity):
        main.add_command(command)
