"""The beat schedule: the periodic sweeps and ticks, by task name (see `tasks/`)."""
from __future__ import annotations

from core.settings import Settings


def beat_schedule(settings: Settings) -> dict:
    every = {
        "send-due-reminders": ("sessionpack.send_due_reminders", settings.reminder_tick_seconds),
        "sweep-outboxes": ("sessionpack.sweep_outboxes", settings.outbox_sweep_seconds),
        "expire-approval-requests": ("sessionpack.expire_approval_requests", 300.0),
        "resend-stale-refunds": ("sessionpack.resend_stale_refunds", 300.0),
        "resume-stalled-bookings": ("sessionpack.resume_stalled_bookings", settings.saga_stall_seconds),
        "sweep-orphan-meetings": ("sessionpack.sweep_orphan_meetings", 300.0),
        "refund-orphaned-fees": ("sessionpack.refund_orphaned_fees", 300.0),
        "resync-calendars": ("sessionpack.resync_calendars", settings.calendar_resync_seconds),
        "purge-email-bodies": ("sessionpack.purge_email_bodies", 3600.0),
    }
    return {name: {"task": task, "schedule": seconds} for name, (task, seconds) in every.items()}
