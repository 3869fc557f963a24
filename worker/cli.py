"""The `sessionpack` command line (CONTRACT.md). JSON on stdout, human messages on stderr.

Exit codes: 0 success, 1 the operation ran and failed, 2 invalid input, 3 a service we need
(database, broker) is unreachable. Errors print {"error": {"code", "message"}}.
"""
from __future__ import annotations

import functools
import json
import sys
import time
from typing import Any

import click

from services.errors import InvalidInput, ServiceError, Unavailable


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def say(message: str) -> None:
    click.echo(message, err=True)


def fail(code: str, message: str, exit_code: int) -> None:
    emit({"error": {"code": code, "message": message}})
    sys.exit(exit_code)


def reporting(fn):
    """Turn service errors and unreachable services into the contract's JSON errors and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kombu.exceptions import OperationalError as BrokerError
        from sqlalchemy.exc import DataError
        from sqlalchemy.exc import OperationalError as DatabaseError

        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            fail(exc.code, exc.message, exc.exit_code)
        except DatabaseError as exc:
            fail("database_unreachable", f"cannot reach the database: {str(exc.orig).strip()[:300]}; "
                 "check DATABASE_URL and that the server runs", 3)
        except DataError:
            fail("invalid_input", "an argument holds something the database cannot store (such as a NUL "
                 "character); check the ids and values given", 2)
        except BrokerError as exc:
            fail("broker_unreachable", f"cannot reach the broker: {exc}; check BROKER_URL and that the server runs", 3)

    return wrapper


def container():
    from core.wiring import get_container
    from worker.app import app  # noqa: F401  (registers the app the container sends tasks with)

    return get_container()


def ensure_schema(c) -> None:
    """Commands that read or write data need the schema; say how to get it when it is missing."""
    from models.db import schema_status

    current, head = schema_status(c.engine)
    if current != head:
        raise Unavailable("schema_outdated", f"the database schema is at {current or 'nothing'}, the code needs {head}; run `sessionpack migrate`")


def _read_json_or_yaml(source: str) -> Any:
    import yaml

    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as exc:
        raise InvalidInput("unreadable_input", f"cannot read {source}: {exc.strerror}; check the path")
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InvalidInput("unparsable_input", f"{source} is neither JSON nor YAML: {exc}")
    except RecursionError:
        raise InvalidInput("unparsable_input", f"{source} is nested too deeply to be a booking request")


class JsonErrorsGroup(click.Group):
    """Usage errors (a missing argument, an unknown option, a bad value) answer with the contract's
    JSON error and exit 2, like every other invalid input, instead of click's text alone."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "sessionpack"
            say(exc.format_message())
            fail("invalid_usage", f"{exc.format_message().rstrip('.')}; see `{command} --help`", 2)
        except click.Abort:
            say("aborted")
            sys.exit(130)


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """sessionpack: book session packages, live with each session separately."""


@main.command()
@reporting
def migrate() -> None:
    """Create or upgrade the database schema (idempotent)."""
    from models.db import migrate as run_migrations

    head = run_migrations(container().engine)
    emit({"migrated": True, "revision": head})


@main.group()
def config() -> None:
    """Owners, booking pages and event types."""


@config.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@reporting
def config_apply(file: str) -> None:
    """Validate FILE (JSON or YAML) and upsert it, all or nothing."""
    from services.config import apply_config, load_file

    data = load_file(file)
    c = container()
    ensure_schema(c)
    with c.uow() as uow:
        counts = apply_config(uow, data)
        uow.commit()
    say(f"applied {counts['owners']} owner(s), {counts['booking_pages']} booking page(s), {counts['event_types']} event type(s)")
    emit({"applied": counts})


@main.command()
@click.argument("target")
@click.option("--from", "from_", required=True, help="first date, YYYY-MM-DD")
@click.option("--to", "to", required=True, help="last date, YYYY-MM-DD (inclusive)")
@click.option("--tz", default=None, help="timezone the dates are read in (default: the page's)")
@reporting
def slots(target: str, from_: str, to: str, tz: str | None) -> None:
    """Free start times of PAGE[/EVENT_TYPE]."""
    from services.scheduling import list_slots

    c = container()
    ensure_schema(c)
    with c.session_factory() as db:
        found = list_slots(db, target, from_, to, tz, now=c.clock(), extra_busy=c.busy_source)
    emit({"slots": found})


def _wait_for(c, booking_id: str, seconds: float, settled) -> dict | None:
    """Poll until `settled(status)`; the booking object, or None when time ran out."""
    from models import Booking
    from services.booking.views import booking_object

    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        with c.session_factory() as db:
            booking = db.get(Booking, booking_id)
            if booking is not None and settled(booking):
                return booking_object(db, booking, c.settings)
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(0.5, delay * 1.5)


@main.command()
@click.argument("source")
@click.option("--wait", type=float, default=None, help="wait up to SECONDS for a final status")
@reporting
def book(source: str, wait: float | None) -> None:
    """Enqueue the booking request in SOURCE (a file, or - for stdin)."""
    from services.booking.ids import booking_id_for
    from services.booking.request import check_against_catalog, parse_request

    data = _read_json_or_yaml(source)
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
    result = _wait_for(c, booking_id, wait, lambda b: b.status != "pending")
    if result is None:
        say(f"booking {booking_id} is still pending after {wait:g}s; check later with `sessionpack show {booking_id}`")
        emit({"booking_id": booking_id, "status": "pending"})
        sys.exit(1)
    emit(result)
    if result["status"] == "failed":
        sys.exit(1)


@main.command()
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


@main.command()
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


from worker.cli_approval import register as _register_approval  # noqa: E402

_register_approval(main)
from worker.cli_lifecycle import register as _register_lifecycle; _register_lifecycle(main)  # noqa: E402,E702
from worker.cli_ops import register as _register_ops; _register_ops(main)  # noqa: E402,E702

if __name__ == "__main__":  # pragma: no cover
    main()
