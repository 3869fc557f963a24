"""`sessionpack apikey create|list|revoke`: keys of the HTTP API (`/api/v1`), stored as hashes."""
from __future__ import annotations

import click

from .common import container, emit, ensure_schema, reporting, say


def register(main: click.Group) -> None:
    @main.group()
    def apikey() -> None:
        """Keys of the HTTP API: create (shown once), list, revoke."""

    @apikey.command("create")
    @click.option("--name", required=True, help="a name to list and revoke it by, e.g. web-frontend")
    @click.option("--page", "pages", multiple=True, help="a booking page the key covers (repeat; none: every page)")
    @click.option("--admin", is_flag=True, help="the key may act as the booking page administrator")
    @reporting
    def create(name: str, pages: tuple[str, ...], admin: bool) -> None:
        """Make a key and print it once: only its hash is kept."""
        from services import apikeys

        c = container()
        ensure_schema(c)
        with c.uow() as uow:
            made = apikeys.create_key(uow, name, pages, admin, now=c.clock())
            uow.commit()
        say("store the key now: it is not shown again (only its hash is kept)")
        emit(made)

    @apikey.command("list")
    @reporting
    def list_() -> None:
        """Every key with its pages, admin flag and use (never the key itself)."""
        from services import apikeys

        c = container()
        ensure_schema(c)
        with c.session_factory() as db:
            emit({"keys": apikeys.list_keys(db)})

    @apikey.command("revoke")
    @click.argument("name")
    @reporting
    def revoke(name: str) -> None:
        """Revoke a key by name (refused from then on; web processes notice within 5 seconds)."""
        from services import apikeys

        c = container()
        ensure_schema(c)
        with c.uow() as uow:
            described = apikeys.revoke_key(uow, name, now=c.clock())
            uow.commit()
        emit(described)
