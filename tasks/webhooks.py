"""Outgoing webhook delivery: right after the change that emitted them, and on beat's sweep."""
from __future__ import annotations

from services import webhooks
from worker.app import app

from .base import container, retry_transient


@app.task(name="sessionpack.deliver_webhooks", bind=True, acks_late=True)
def deliver_webhooks(self, ids: list[int] | None = None, booking_ids: list[str] | None = None) -> dict:
    # `booking_ids` only labels the task in Flower. A receiver's failure is recorded on its row and retried by the sweep with growing waits;
    # only the database being away retries the task itself.
    return retry_transient(self, webhooks.deliver, container(), ids)
