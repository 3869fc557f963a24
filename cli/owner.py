"""`sessionpack owner set-password`: the owner console's sign-in (services/console/accounts.py).

The password is read from a prompt (twice, hidden) on a terminal, or from the first line of
stdin otherwise; it never appears in the arguments, the output or the logs.
"""
from __future__ import annotations

import sys

import click

from services.errors import InvalidInput

from .common import container, emit, ensure_schema, reporting, say


def _read_password() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        return click.prompt("New password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise InvalidInput("password_required", "give the password on stdin (its first line) or run this in a terminal")
    return line.rstrip("\r\n")


def register(main: click.Group) -> None:
    @main.group(cls=type(main))
    def owner() -> None:
        """Owner accounts of the owner console (/owner/ on the web process)."""

    @owner.command("set-password")
    @click.argument("owner_id")
    @click.option("--site-admin/--no-site-admin", default=None,
                  help="let this owner see every booking page in the console (or no longer); unchanged when omitted")
    @reporting
    def set_password(owner_id: str, site_admin: bool | None) -> None:
        """Set OWNER_ID's console password, read from a prompt or the first line of stdin."""
        from services.console.accounts import set_password as apply

        c = container()
        ensure_schema(c)
        password = _read_password()
        who = apply(c, owner_id, password, site_admin=site_admin)
        say(f"owner {who.id} can sign in at {c.settings.public_base_url}/owner/login")
        emit({"owner": who.id, "site_admin": who.site_admin, "password": "set"})
