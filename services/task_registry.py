"""Every task the task outbox can carry, by name, and the service function that is its body.

One table, read by `tasks/` (the Celery tasks), by the tests' in-process runner
(`tests/support.py` `drain()`) and by `bench/saga_profile.py`. A body is `fn(container, **kwargs)`
with the task's keyword arguments. A saga step also names its step: when it fails for good, the
booking fails at that step and is compensated (`services.booking.fail_booking`). The public
tasks a frontend sends (CONTRACT.md: submit, cancel, reschedule, refund, approve, decline) check
their arguments and grants in `tasks/args.py` first and are not listed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import webhooks
from .booking import (TASK_FOR_STEP, authorize_payment, capture_payment, compensate_booking, intake,
                      provision_conferencing, start_booking)
from .calendar import SYNC_CALENDAR, sync_booking
from .lifecycle import FINISH_CANCELLATION, MOVE_MEETING, SEND_REFUNDS, finish_cancellation, move_meeting, send_refunds
from .notifications import outbox


@dataclass(frozen=True)
class TaskBody:
    fn: Callable[..., Any]
    saga_step: str | None = None  # the booking saga's step this task runs


# `booking_ids` only labels a delivery task in Flower (worker/redaction.py); the rows say the rest.
def _send_emails(c, ids: list[int] | None = None, booking_ids: list[str] | None = None) -> dict:
    return outbox.deliver(c, ids)


def _sync_calendar(c, booking_id: str, retry: bool = True) -> dict | None:
    # `retry` is the task's own decision (False: beat's one-try re-sync); the body is the same.
    return sync_booking(c, booking_id)


def _deliver_webhooks(c, ids: list[int] | None = None, booking_ids: list[str] | None = None) -> dict:
    return webhooks.deliver(c, ids)


TASKS: dict[str, TaskBody] = {
    TASK_FOR_STEP["authorize"]: TaskBody(authorize_payment, "authorize"),
    TASK_FOR_STEP["conferencing"]: TaskBody(provision_conferencing, "conferencing"),
    TASK_FOR_STEP["capture"]: TaskBody(capture_payment, "capture"),
    TASK_FOR_STEP["compensate"]: TaskBody(compensate_booking),
    intake.START_BOOKING: TaskBody(start_booking),
    outbox.SEND_TASK: TaskBody(_send_emails),
    FINISH_CANCELLATION: TaskBody(finish_cancellation),
    SEND_REFUNDS: TaskBody(send_refunds),
    MOVE_MEETING: TaskBody(move_meeting),
    SYNC_CALENDAR: TaskBody(_sync_calendar),
    webhooks.DELIVER_TASK: TaskBody(_deliver_webhooks),
}
