"""`sessionpack migrate`, `doctor` and `demo`: for operators and for first contact."""
from __future__ import annotations

import sys

import click

from .common import container, emit, reporting, say


def register(main: click.Group) -> None:
    """Add the operations commands to the `sessionpack` group."""

    @main.command()
    @reporting
    def migrate() -> None:
        """Create or upgrade the database schema (idempotent)."""
        from models.db import migrate as run_migrations

        head = run_migrations(container().engine)
        emit({"migrated": True, "revision": head})

    @main.command()
    @click.option("--json", "json_only", is_flag=True, help="print only the JSON object (no table on stderr)")
    def doctor(json_only: bool) -> None:
        """Check the database, broker, outboxes, reminders and every configured integration.

        Prints a table on stderr and {"ok", "checks": [{"name", "ok", "detail"}]} on stdout;
        exits 1 when a check fails (integrations that are not configured do not fail).
        """
        from .doctor import run_checks, table

        checks = run_checks(container())
        ok = all(check.ok for check in checks)
        if not json_only:
            say(table(checks))
            say("all checks passed" if ok else f"{sum(not c.ok for c in checks)} check(s) failed")
        emit({"ok": ok, "checks": [check.as_json() for check in checks]})
        if not ok:
            sys.exit(1)

    @main.command()
    @reporting
    def demo() -> None:
        """Book, cancel and reschedule a 3-session $150 package end to end, on the embedded
        defaults with no server installed; leaves nothing running. Progress and a summary go to
        stderr, the final booking object to stdout."""
        from .demo import run_demo

        emit(run_demo(container(), say))
