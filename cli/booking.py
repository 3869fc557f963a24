"""`sessionpack book`, `show` and `activity`: a booking request in; the booking object and the
activity stream out."""
from __future__ import annotations

import sys

import click

from .common import container, emit, ensure_schema, read_json_or_yaml, reporting, say, wait_for


@click.command()
@click.argument("source")
@click.option("--wait", type=float, default=None, help="wait up to SECONDS for a final status")
@reporting
def book(source: str, wait: float | None) -> None:
    """Enqueue the booking request in SOURCE (a file, or - for stdin).

    The request is validated, then stored with its publication in one transaction before the
    answer (persist, then publish): a broker that forgets it loses nothing, beat publishes it
    again. The same request_id with the same body answers the same booking; with another body,
    `request_id_reused` (exit 2)."""
    from services.booking.intake import accept_booking_request, published

    data = read_json_or_yaml(source)
    c = container()
    ensure_schema(c)
    booking_id, status, created = accept_booking_request(c, data, source="cli")
    if created and not published(c, booking_id):
        say(f"the broker did not take the request now; it is stored as {booking_id} and will be sent once the "
            "broker answers (beat's outbox sweep); check BROKER_URL and that the broker runs")
    if wait is None:
        emit({"booking_id": booking_id, "status": status})
        return
    result = wait_for(c, booking_id, wait, lambda b: b.status != "pending")
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
