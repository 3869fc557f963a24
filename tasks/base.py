"""What every task shares: the container, the retry policy, the worker-process hooks."""
from __future__ import annotations

import logging
import random

from celery.signals import worker_process_init
from sqlalchemy.exc import DBAPIError, OperationalError

from services.errors import ServiceError, TransientError
from core.wiring import get_container, set_container

log = logging.getLogger("sessionpack.tasks")

MAX_RETRIES = 6


@worker_process_init.connect
def _fresh_container(**_kwargs) -> None:
    """A forked worker process must not share the parent's database connections."""
    set_container(None)


def container():
    return get_container()


def backoff(retries: int, retry_after: float | None = None, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds before the next try: the peer's Retry-After when it gave one, else exponential
    with full jitter (so retries of many bookings do not arrive together)."""
    if retry_after is not None:
        return min(cap, max(0.0, retry_after))
    return random.uniform(0, min(cap, base * 2 ** retries)) + 0.1


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def run_saga_step(task, step: str, booking_id: str, fn) -> None:
    """Run one saga step. Transient failures retry with backoff; permanent ones, or transient
    ones that outlived their retries, fail the booking and start its compensation."""
    from services.booking import fail_booking

    c = container()
    try:
        fn(c, booking_id)
    except Exception as exc:  # noqa: BLE001 - classified below
        if is_transient(exc) and task.request.retries < MAX_RETRIES:
            log.info("step %s of %s will retry: %s", step, booking_id, exc)
            raise task.retry(exc=exc, countdown=backoff(task.request.retries, getattr(exc, "retry_after", None)))
        if not isinstance(exc, ServiceError):
            log.exception("step %s of %s failed unexpectedly", step, booking_id)
        fail_booking(c, booking_id, step, exc)


def retry_transient(task, fn, *args, **kwargs):
    """For tasks outside the saga: retry transient failures, let the rest raise."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        if is_transient(exc) and task.request.retries < MAX_RETRIES:
            raise task.retry(exc=exc, countdown=backoff(task.request.retries, getattr(exc, "retry_after", None)))
        raise
