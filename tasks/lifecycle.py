"""Lifecycle tasks. Public (CONTRACT.md, keyword arguments as on the command line):
`sessionpack.cancel_sessions`, `sessionpack.reschedule_session`, `sessionpack.refund_booking`.
Internal: the outside work a change leaves behind (meetings, refunds).

A public task's change key is its task id, so a redelivered message applies its change at most
once. A refusal (bad token, policy, slot taken, declined fee) is an answer, not a crash: the
service has recorded it in the activity stream, and the task returns it instead of raising.
A reschedule that cannot finish (transient failures outlived its retries, or an unexpected
error) gives up: refused as `reschedule_failed`, its fee refunded (services/lifecycle/abandon.py).
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from celery.exceptions import Retry

from services import lifecycle
from services.errors import ServiceError, TransientError
from worker.app import app

from .base import container, retry_transient

log = logging.getLogger("sessionpack.tasks.lifecycle")

TASK = dict(bind=True, acks_late=True, max_retries=None)


def _change(task, fn: Callable, give_up: Callable | None = None, **kwargs: Any) -> dict:
    """Run a change; `give_up(container, change_key=...)`, when given, has the last word on a change
    that cannot finish, and returns the refusal to answer with (None: let the error stand)."""
    try:
        return retry_transient(task, fn, container(), change_key=task.request.id, **kwargs)
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001 - a refusal is answered, the rest may be given up
        if isinstance(exc, ServiceError) and not isinstance(exc, TransientError):
            log.info("%s refused: %s", task.name, exc.code)  # never the arguments: they may hold tokens
            return {"error": exc.as_dict()}
        refusal = _give_up(task, give_up, exc) if give_up is not None else None
        if refusal is None:
            raise
        return {"error": refusal.as_dict()}


def _give_up(task, give_up: Callable, exc: Exception) -> ServiceError | None:
    # With the traceback: an unexpected error (a bug) ends here too, answered as a refusal.
    log.warning("%s gives up after %d tries: %s", task.name, task.request.retries + 1,
                getattr(exc, "code", type(exc).__name__), exc_info=exc)
    try:
        return give_up(container(), change_key=task.request.id)
    except Exception:  # noqa: BLE001 - beat's sweep finishes what this could not
        log.exception("%s could not give up cleanly; the orphaned-fee sweep will", task.name)
        return None


@app.task(name="sessionpack.cancel_sessions", **TASK)
def cancel_sessions(self, session_ids: list[str], tokens: list[str] | None = None, admin: bool = False,
                    refund: bool = True, no_refund: bool = False, reason: str | None = None) -> dict:
    """Cancel sessions of one booking (customer tokens, one per session, or admin)."""
    return _change(self, lifecycle.cancel_sessions, session_ids=session_ids, tokens=tokens, admin=admin,
                   refund=refund and not no_refund, reason=reason)


@app.task(name="sessionpack.reschedule_session", **TASK)
def reschedule_session(self, session_id: str, to: str, token: str | None = None, admin: bool = False) -> dict:
    """Move one session to the time `to` (ISO 8601 with an offset)."""
    give_up = functools.partial(lifecycle.give_up_reschedule, session_id=session_id, token=token, admin=admin)
    return _change(self, lifecycle.reschedule_session, give_up, session_id=session_id, new_start_iso=to,
                   token=token, admin=admin)


@app.task(name="sessionpack.refund_booking", **TASK)
def refund_booking(self, booking_id: str, amount: str, admin: bool = False, reason: str | None = None) -> dict:
    """Refund `amount` (e.g. "12.50") of a booking, as the administrator."""
    return _change(self, lifecycle.refund_booking, booking_id=booking_id, amount_text=amount, admin=admin,
                   reason=reason)


def _internal(name: str):
    """An internal task running the service function registered under its name."""
    fn = lifecycle.TASK_HANDLERS[name]

    def run(self, **kwargs: Any) -> None:
        retry_transient(self, fn, container(), **kwargs)

    run.__name__ = run.__qualname__ = name.rsplit(".", 1)[-1]
    run.__doc__ = fn.__doc__
    return app.task(name=name, **TASK)(run)


finish_cancellation = _internal(lifecycle.FINISH_CANCELLATION)
send_refunds = _internal(lifecycle.SEND_REFUNDS)
move_meeting = _internal(lifecycle.MOVE_MEETING)
