"""The `sessionpack` command line (CONTRACT.md): the top-level group and its command groups.

A command group is a module of `cli/` with a `register(main)` function that adds its commands;
adding one is one line in GROUPS.
"""
from __future__ import annotations

from importlib import import_module

import click

from .common import JsonErrorsGroup

GROUPS: tuple[str, ...] = (
    "cli.ops",        # migrate, doctor, demo
    "cli.catalog",    # config apply, slots
    "cli.booking",    # book, show, activity
    "cli.lifecycle",  # cancel, reschedule, refund, reconcile
    "cli.approval",   # approve, decline
    "cli.apikey",     # apikey create, list, revoke
    "cli.webhooks",   # webhooks list, redeliver
    "cli.owner",      # owner set-password (the owner console's sign-in)
)


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sessionpack", prog_name="sessionpack", message="%(prog)s %(version)s")
def main() -> None:
    """sessionpack: book session packages, live with each session separately."""


for _module in GROUPS:
    import_module(_module).register(main)

if __name__ == "__main__":  # pragma: no cover
    main()
