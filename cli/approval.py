"""`sessionpack approve` and `sessionpack decline`: the owner's decision on a manual-mode request."""
from __future__ import annotations

import sys

import click

from services.errors import InvalidInput

from .common import container, emit, ensure_schema, reporting, say, wait_for


def _require_admin(admin: bool) -> None:
    if not admin:
        raise InvalidInput("admin_required", "only the booking page administrator decides requests; add --admin")


def register(main: click.Group) -> None:
    @main.command()
    @click.argument("booking_id")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator")
    @click.option("--wait", type=float, default=None, help="wait up to SECONDS for the booking to be confirmed")
    @reporting
    def approve(booking_id: str, admin: bool, wait: float | None) -> None:
        """Approve a booking made in manual booking mode; the workflow then runs to confirmation."""
        from services.lifecycle.requests import request_approve

        _require_admin(admin)
        c = container()
        ensure_schema(c)
        change = request_approve(c, booking_id)  # checks it awaits approval; queued with an admin grant
        if wait is None:
            emit({"booking_id": booking_id, "status": "approving", "change_id": str(change)})
            return
        result = wait_for(c, booking_id, wait, lambda b: b.status not in ("awaiting_approval", "pending"))
        if result is None:
            say(f"booking {booking_id} is not confirmed after {wait:g}s; check with `sessionpack show {booking_id}`")
            sys.exit(1)
        emit(result)
        sys.exit(0 if result["status"] == "confirmed" else 1)

    @main.command()
    @click.argument("booking_id")
    @click.option("--admin", is_flag=True, help="act as the booking page administrator")
    @click.option("--reason", default=None, help="told to the customer")
    @reporting
    def decline(booking_id: str, admin: bool, reason: str | None) -> None:
        """Decline a booking made in manual booking mode: its slot is released, the customer told."""
        from services.lifecycle.requests import request_decline

        _require_admin(admin)
        c = container()
        ensure_schema(c)
        change = request_decline(c, booking_id, reason=reason)
        emit({"booking_id": booking_id, "status": "declining", "change_id": str(change)})
