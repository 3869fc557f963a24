"""Lifecycle tasks. Public (CONTRACT.md, keyword arguments as on the command line):
`sessionpack.cancel_sessions`, `sessionpack.reschedule_session`, `sessionpack.refund_booking`.
Internal: the outside work a change leaves behind (meetings, refunds).

A public task's arguments are typed and its authority checked first (tasks/args.py: admin grants,
customer grants). Its change key is its `change_id` (a refund's `refund_id`), else its task id, so
a redelivered or republished message applies its change at most once. A refusal (bad token, policy, slot taken, declined fee) is an answer, not a crash: the
service has recorded it in the activity stream, and the task returns it instead of raising.
A reschedule that cannot finish (transient failures outlived its retries, or an unexpected
error) gives up: refused as `reschedule_failed`, its fee refunded (services/lifecycle/abandon.py).
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

from celery.exceptions import Retry

from services import lifecycle
from services.errors import ServiceError, TransientError
from services.task_registry import TASKS
from worker.app import app

from .args import Accepted, accepting
from .base import container, retry_transient

log = logging.getLogger("sessionpack.tasks.lifecycle")

TASK = dict(bind=True, acks_late=True, max_retries=None)


def _change(task, fn: Callable, give_up: Callable | None = None, *, change_key: str, **kwargs: Any) -> dict:
    """Run a change; `give_up(container, change_key=...)`, when given, has the last word on a change
    that cannot finish, and returns the refusal to answer with (None: let the error stand)."""
    try:
        return retry_transient(task, fn, container(), change_key=change_key, **kwargs)
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001 - a refusal is answered, the rest may be given up
        if isinstance(exc, ServiceError) and not isinstance(exc, TransientError):
            log.info("%s refused: %s", task.name, exc.code)  # never the arguments: they may hold tokens
            return {"error": exc.as_dict()}
        refusal = _give_up(task, give_up, exc, change_key) if give_up is not None else None
        if refusal is None:
            raise
        return {"error": refusal.as_dict()}


def _give_up(task, give_up: Callable, exc: Exception, change_key: str) -> ServiceError | None:
    # With the traceback: an unexpected error (a bug) ends here too, answered as a refusal.
    log.warning("%s gives up after %d tries: %s", task.name, task.request.retries + 1,
                getattr(exc, "code", type(exc).__name__), exc_info=exc)
    try:
        return give_up(container(), change_key=change_key)
    except Exception:  # noqa: BLE001 - beat's sweep finishes what this could not
        log.exception("%s could not give up cleanly; the orphaned-fee sweep will", task.name)
        return None


@app.task(name="sessionpack.cancel_sessions", typing=False, **TASK)
@accepting
def cancel_sessions(self, c, ok: Accepted) -> dict:
    """Cancel sessions of one booking: as the customer (their tokens, one per session, or a customer
    grant from the edge) or as the admin (`admin: true` with an admin grant). Arguments: tasks/args.py."""
    a = ok.args
    return _change(self, lifecycle.cancel_sessions, change_key=ok.change_key, session_ids=a.ids,
                   tokens=ok.tokens_for(c, a.ids) or a.tokens, admin=ok.admin, refund=a.refund and not a.no_refund,
                   reason=a.reason, actor=ok.actor)


@app.task(name="sessionpack.reschedule_session", typing=False, **TASK)
@accepting
def reschedule_session(self, c, ok: Accepted) -> dict:
    """Move one session to the time `to` (ISO 8601 with an offset); the customer's `token` (or a
    customer grant), or `admin: true` with an admin grant."""
    a = ok.args
    granted = ok.tokens_for(c, [a.session_id])
    token = granted[0] if granted else a.token
    give_up = functools.partial(lifecycle.give_up_reschedule, session_id=a.session_id, token=token, admin=ok.admin)
    return _change(self, lifecycle.reschedule_session, give_up, change_key=ok.change_key, session_id=a.session_id,
                   new_start_iso=a.to, token=token, admin=ok.admin, actor=ok.actor)


@app.task(name="sessionpack.refund_booking", typing=False, **TASK)
@accepting
def refund_booking(self, c, ok: Accepted) -> dict:
    """Refund `amount` (e.g. "12.50") of a booking, as the administrator (an admin grant). A
    caller's `refund_id` is the refund's idempotency key."""
    a = ok.args
    return _change(self, lifecycle.refund_booking, change_key=ok.change_key, booking_id=a.booking_id,
                   amount_text=a.amount, admin=ok.admin, reason=a.reason, actor=ok.actor)


def _internal(name: str):
    """An internal task running the service function registered under its name."""
    fn = TASKS[name].fn

    def run(self, **kwargs: Any) -> None:
        retry_transient(self, fn, container(), **kwargs)

    run.__name__ = run.__qualname__ = name.rsplit(".", 1)[-1]
    run.__doc__ = fn.__doc__
    # The body's own parameters (after the container): a message with others is refused before it
    # runs (worker/task_base.py), not a TypeError inside it.
    params = list(inspect.signature(fn).parameters.values())[1:]
    run.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *params])
    return app.task(name=name, **TASK)(run)


finish_cancellation = _internal(lifecycle.FINISH_CANCELLATION)
send_refunds = _internal(lifecycle.SEND_REFUNDS)
move_meeting = _internal(lifecycle.MOVE_MEETING)
