"""`sessionpack webhooks list|redeliver`: the outgoing webhook deliveries."""
from __future__ import annotations

import click

from .common import container, emit, ensure_schema, reporting


def register(main: click.Group) -> None:
    @main.group()
    def webhooks() -> None:
        """Outgoing webhooks: list deliveries, send an event again."""

    @webhooks.command("list")
    @click.option("--status", type=click.Choice(["pending", "sending", "delivered", "failed"]), default=None,
                  help="only deliveries in this state (failed: given up after 3 days)")
    @click.option("--booking", "booking_id", default=None, help="only this booking's events")
    @click.option("--limit", type=click.IntRange(1, 1000), default=50)
    @reporting
    def list_(status: str | None, booking_id: str | None, limit: int) -> None:
        """Deliveries, newest first: event id, type, endpoint, status, attempts, last error."""
        from services import webhooks as hooks

        c = container()
        ensure_schema(c)
        with c.session_factory() as db:
            emit({"webhooks": hooks.list_deliveries(db, status=status, booking_id=booking_id, limit=limit)})

    @webhooks.command("redeliver")
    @click.argument("event_id")
    @reporting
    def redeliver(event_id: str) -> None:
        """Send an event again to every endpoint it went to (same id and body; attempts start afresh)."""
        from services import webhooks as hooks

        c = container()
        ensure_schema(c)
        with c.uow() as uow:
            ids = hooks.redeliver(uow, event_id, c.clock())
            uow.commit()
        emit({"event_id": event_id, "deliveries": len(ids), "status": "pending"})
