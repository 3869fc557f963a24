"""Delivery and periodic tasks: the email outbox, reminders, sweeps of what a crash left."""
from __future__ import annotations

from datetime import timedelta

from services import lifecycle, webhooks
from services.booking import intake, resume_stalled
from services.calendar import resync
from services.conferencing import reconcile
from services.lifecycle.ledger import resend_stale_refunds as resend_refunds
from services.notifications import outbox, reminders
from worker.app import app
from core.wiring import prune_dispatched_tasks

from .base import container, retry_transient


@app.task(name="sessionpack.send_emails", bind=True, acks_late=True)
def send_emails(self, ids: list[int] | None = None, booking_ids: list[str] | None = None) -> dict:
    # `booking_ids` only labels the task in Flower (worker/redaction.py); the rows say the rest.
    return retry_transient(self, outbox.deliver, container(), ids)


@app.task(name="sessionpack.send_due_reminders", bind=True, acks_late=True)
def send_due_reminders(self) -> dict:
    return retry_transient(self, reminders.send_due, container())


@app.task(name="sessionpack.sweep_outboxes", bind=True, acks_late=True)
def sweep_outboxes(self) -> dict:
    c = container()
    tasks = c.dispatch_tasks(ids=None)
    emails = outbox.deliver(c, None)
    hooks = webhooks.deliver(c, None)
    return {"tasks": tasks, "pruned": prune_dispatched_tasks(c), **emails, "webhooks": hooks}


@app.task(name="sessionpack.resend_stale_refunds", bind=True, acks_late=True)
def resend_stale_refunds(self) -> int:
    return retry_transient(self, resend_refunds, container(), timedelta(minutes=10))


@app.task(name="sessionpack.resume_stalled_bookings", bind=True, acks_late=True)
def resume_stalled_bookings(self) -> dict:
    # Accepted requests no booking picked up (the broker lost them) wait as long as a stalled saga.
    c = container()
    stall = timedelta(seconds=c.settings.saga_stall_seconds)
    return {"resumed": resume_stalled(c, stall), **intake.republish_unclaimed(c, stall)}


@app.task(name="sessionpack.sweep_orphan_meetings", bind=True, acks_late=True)
def sweep_orphan_meetings(self) -> dict:
    # No task retry: the sweep leaves what failed for its next tick.
    return reconcile.sweep_orphan_meetings(container())


@app.task(name="sessionpack.refund_orphaned_fees", bind=True, acks_late=True)
def refund_orphaned_fees(self) -> dict:
    # No task retry: what fails is tried again on the next tick.
    c = container()
    return lifecycle.refund_orphaned_fees(c, timedelta(seconds=c.settings.orphaned_fee_grace_seconds),
                                          timedelta(hours=c.settings.orphaned_fee_window_hours))


@app.task(name="sessionpack.resync_calendars", bind=True, acks_late=True)
def resync_calendars(self) -> dict:
    # No task retry: the next tick looks again.
    return resync.resync_calendars(container())


@app.task(name="sessionpack.purge_email_bodies", bind=True, acks_late=True)
def purge_email_bodies(self) -> dict:
    # No task retry: the next tick purges what this one left.
    return outbox.purge_bodies(container())
