"""Thin Celery tasks: parse, load by id, call one service, decide retry or fail.

Public task names (CONTRACT.md): sessionpack.submit_booking, sessionpack.cancel_sessions,
sessionpack.reschedule_session, sessionpack.refund_booking. The others are internal steps.
"""
from . import approval, booking, calendar, lifecycle, maintenance, webhooks  # noqa: F401  (registers the tasks)
