"""`sessionpack config apply` and `sessionpack slots`: owners, booking pages and event types, and
their free times."""
from __future__ import annotations

import click

from .common import container, emit, ensure_schema, reporting, say


@click.group()
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


@click.command()
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


def register(main: click.Group) -> None:
    main.add_command(config)
    main.add_command(slots)
