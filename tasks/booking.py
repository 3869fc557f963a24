"""The booking saga's tasks. Each carries the booking id in its arguments, so an operator can
follow one booking through the chain in Flower."""
from __future__ import annotations

import logging
from typing import Any

from services.booking import intake
from services.booking import start_booking as _start, submit_booking as _submit
from services.task_registry import TASKS
from worker.app import app

from .args import parse_submit
from .base import container, retry_transient, run_saga_step


def _saga_step(task, booking_id: str) -> None:
    """Run the saga step this task is (its body and step in services/task_registry.py)."""
    body = TASKS[task.name]
    run_saga_step(task, body.saga_step, booking_id, body.fn)


SAGA_TASK = dict(bind=True, acks_late=True, max_retries=None)
COMPENSATE_RETRIES = 50
log = logging.getLogger("sessionpack.tasks")


@app.task(name="sessionpack.submit_booking", typing=False, **SAGA_TASK)
def submit_booking(self, *args: Any, **kwargs: Any) -> str | dict | None:
    """Validate the request and hold all its slots (or record why not); the saga goes on from there.
    The request object is the only argument (positional, or `request=`); anything else is refused
    as `invalid_request` and recorded (`request.refused`)."""
    from services.errors import InvalidInput

    from .args import SUBMIT, peek_submit, record_refused

    try:
        request = parse_submit(args, kwargs)
    except InvalidInput as exc:
        said = peek_submit(args, kwargs)
        record_refused(container(), SUBMIT, self.request.id, {"booking_page": said.get("booking_page")}, exc,
                       request_id=said.get("request_id"))
        return {"error": exc.as_dict()}
    return retry_transient(self, _submit, container(), request)


@app.task(name=intake.START_BOOKING, **SAGA_TASK)
def start_booking(self, request_id: str) -> str | None:
    """Submit a request the intake stored (the CLI, the HTTP API): it carries only the id."""
    return retry_transient(self, _start, container(), request_id)


@app.task(name="sessionpack.authorize_payment", **SAGA_TASK)
def authorize_payment(self, booking_id: str) -> None:
    _saga_step(self, booking_id)


@app.task(name="sessionpack.provision_conferencing", **SAGA_TASK)
def provision_conferencing(self, booking_id: str) -> None:
    _saga_step(self, booking_id)


@app.task(name="sessionpack.capture_payment", **SAGA_TASK)
def capture_payment(self, booking_id: str) -> None:
    _saga_step(self, booking_id)


@app.task(name="sessionpack.compensate_booking", **SAGA_TASK)
def compensate_booking(self, booking_id: str) -> None:
    # Compensation must finish: it retries transient failures (about an hour of tries), then
    # gives up on what still fails outside (recorded for `doctor`), so the booking ends `failed`
    # with its slots free rather than hanging in `pending`.
    try:
        TASKS[self.name].fn(container(), booking_id)
    except Exception as exc:  # noqa: BLE001
        from .base import backoff, is_transient

        if is_transient(exc) and self.request.retries < COMPENSATE_RETRIES:
            raise self.retry(exc=exc, countdown=backoff(min(self.request.retries, 6)), max_retries=COMPENSATE_RETRIES)
        log.warning("compensation of %s gives up on what still fails: %s", booking_id, exc, exc_info=True)
        TASKS[self.name].fn(container(), booking_id, give_up=exc)
