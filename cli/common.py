"""What every `sessionpack` command shares: JSON on stdout, human messages on stderr, the
contract's errors and exit codes, the container, the schema check, reading an input file and
waiting for a booking to settle.

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
    """The process's container, sending tasks through the worker's Celery app."""
    from core.wiring import get_container
    from worker.app import app  # noqa: F401  (registers the app the container sends tasks with)

    return get_container()


def ensure_schema(c) -> None:
    """Commands that read or write data need the schema; say how to get it when it is missing."""
    from models.db import schema_status

    current, head = schema_status(c.engine)
    if current != head:
        raise Unavailable("schema_outdated", f"the database schema is at {current or 'nothing'}, the code needs {head}; run `sessionpack migrate`")


def read_json_or_yaml(source: str) -> Any:
    """The JSON or YAML in the file `source` (or stdin for -), or InvalidInput."""
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


def wait_for(c, booking_id: str, seconds: float, settled, nudge=None) -> dict | None:
    """Poll until `settled(status)`; the booking object, or None when time ran out.

    `nudge`, when given, is called about once a second until it returns True (e.g. publishing
    again a request the broker refused at first)."""
    from models import Booking
    from services.booking.views import booking_object

    deadline = time.monotonic() + seconds
    delay = 0.05
    next_nudge = time.monotonic()
    while True:
        if nudge is not None and time.monotonic() >= next_nudge:
            try:
                if nudge():
                    nudge = None
            except Exception as exc:  # noqa: BLE001 - the broker may still be down: keep waiting
                say(f"could not publish yet: {exc}")
            next_nudge = time.monotonic() + 1.0
        with c.session_factory() as db:
            booking = db.get(Booking, booking_id)
            if booking is not None and settled(booking):
                return booking_object(db, booking, c.settings)
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(0.5, delay * 1.5)
