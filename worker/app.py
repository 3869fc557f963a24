"""The Celery app. Configured from settings; the broker is contacted only when a task is sent."""
from __future__ import annotations

from celery import Celery

from . import logging as _json_logs  # noqa: F401  (connects the JSON log format to Celery's signals)
from . import broker_resilience  # noqa: F401  (keeps the worker alive across a Redis restart, see there)
from .settings import Settings


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    app = Celery("sessionpack", broker=settings.broker_url, include=["tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only when it finished; a worker that dies gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        # Redis gives an unacknowledged task back after this long (a worker that died). The SQLite
        # transport hands its options to create_engine, so it gets none.
        broker_transport_options=(
            {"visibility_timeout": settings.broker_visibility_timeout}
            if settings.broker_url.startswith(("redis", "rediss")) else {}
        ),
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "send-due-reminders": {
                "task": "sessionpack.send_due_reminders",
                "schedule": settings.reminder_tick_seconds,
            },
            "sweep-outboxes": {
                "task": "sessionpack.sweep_outboxes",
                "schedule": settings.outbox_sweep_seconds,
            },
            "expire-approval-requests": {
                "task": "sessionpack.expire_approval_requests",
                "schedule": 300.0,
            },
            "resend-stale-refunds": {
                "task": "sessionpack.resend_stale_refunds",
                "schedule": 300.0,
            },
            "resume-stalled-bookings": {
                "task": "sessionpack.resume_stalled_bookings",
                "schedule": settings.saga_stall_seconds,
            },
            "sweep-orphan-meetings": {
                "task": "sessionpack.sweep_orphan_meetings",
                "schedule": 300.0,
            },
            "refund-orphaned-fees": {
                "task": "sessionpack.refund_orphaned_fees",
                "schedule": 300.0,
            },
            "resync-calendars": {
                "task": "sessionpack.resync_calendars",
                "schedule": settings.calendar_resync_seconds,
            },
        },
    )
    return app


app = make_celery()
