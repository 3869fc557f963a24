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
    """Enqueue the booking request in SOURCE (a file, or - for stdin)."""
    from services.booking.ids import booking_id_for
    from services.booking.request import check_against_catalog, parse_request

    data = read_json_or_yaml(source)
    request, starts = parse_request(data)
    c = container()
    ensure_schema(c)
    with c.session_factory() as db:
        check_against_catalog(db, request, starts)  # unknown slugs, counts: refused before enqueueing
    booking_id = booking_id_for(request.request_id)
    c.celery_app.send_task("sessionpack.submit_booking", args=[request.model_dump(mode="json", exclude_none=True)])
    if wait is None:
        emit({"booking_id": booking_id, "status": "pending"})
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
    from models import Booking
    from services.booking.views import booking_object
    from services.errors import NotFound

    c = container()
    ensure_schema(c)
    with c.session_factory() as db:
        booking = db.get(Booking, booking_id)
        if booking is None:
            raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist (yet); a just-enqueued booking appears once a worker takes it")
        emit(booking_object(db, booking, c.settings))


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
