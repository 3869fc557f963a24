"""What Celery reports about a task's arguments (task events, Flower, `inspect`, its log lines):
never a token, a grant or a customer's name or email, and always the booking id.

Celery shows `argsrepr` / `kwargsrepr`, which a Python sender computes from the arguments when
it publishes (as `saferepr`, everything in clear), which `task.retry()` computes again from the
raw arguments, and which a non-Python sender (celery-node) leaves out, so the worker shows the raw
arguments. Two hooks replace them with `describe(...)` wherever they come from:

- `RedactingAMQP` (the app's `amqp` class): every message this code publishes (the CLI, the web
  process, the task outbox, retries, chains) carries the redacted reprs in its headers and in its
  `task-sent` event;
- `RedactingRequest` (the tasks' `Request` class): the worker recomputes them from the message's
  actual arguments, ignoring whatever reprs the message brought, before the `task-received`
  event, its log line, `inspect` answers and the reprs handed to the pool (failure logs).

`describe` puts `booking_id=...` first in `kwargsrepr`: the booking named by the arguments, by
the request id of a booking request (the id it will have), or, for a message naming sessions or
emails only, looked up in the database (a cached, indexed read).
"""
from __future__ import annotations

import functools
import logging
import re
from typing import Any

from celery import Task
from celery.app.amqp import AMQP
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

log = logging.getLogger("sessionpack.redaction")

HIDDEN = "[redacted]"
# Argument names whose value is a secret (tokens, grants, card references, passwords).
SECRET_KEYS = frozenset({"token", "tokens", "grant", "payment_method", "password", "secret", "api_key", "key"})
# Argument names whose value is personal data.
PERSONAL_KEYS = frozenset({"name", "email", "to_addr", "to_name", "reply_to", "phone"})
_EMAIL = re.compile(r"[^\s@'\"<>(),;]+@[^\s@'\"<>(),;]+")
MAX_REPR = 1024
MAX_ITEMS = 25
MAX_DEPTH = 4
MAX_TEXT = 200


def redact_value(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """A copy of an argument safe to show: secrets and personal fields hidden, anything shaped
    like a token or an email address hidden inside any text, sizes bounded."""
    from services.tokens import redact

    if key is not None and isinstance(key, str):
        lowered = key.lower()
        if lowered in SECRET_KEYS or lowered in PERSONAL_KEYS:
            return None if value is None else HIDDEN
    if depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:40]: redact_value(v, str(k), depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, (list, tuple)):
        out = [redact_value(v, None, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out.append(f"... {len(value) - MAX_ITEMS} more")
        return out
    if isinstance(value, str):
        # Cut first: the patterns must never see a huge text (the email pattern backtracks, and
        # this runs in the worker's consumer before any validation).
        cut = value[:MAX_TEXT + 100]
        text = _EMAIL.sub("[email]", redact(cut))
        return text[:MAX_TEXT] + "..." if len(text) > MAX_TEXT or len(value) > len(cut) else text
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__name__}>"


def _request_of(args: Any, kwargs: dict) -> Any:
    request = kwargs.get("request")
    if request is None and isinstance(args, (list, tuple)) and args:
        request = args[0]
    return request


def _booking_ids(task_name: str, args: Any, kwargs: dict, lookup: bool) -> list[str]:
    """The bookings a message is about, cheapest source first."""
    from services.booking.ids import booking_id_for

    booking_id = kwargs.get("booking_id")
    if isinstance(booking_id, str) and booking_id:
        return [booking_id[:64]]
    ids = kwargs.get("booking_ids")
    if isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids):
        return [i[:64] for i in ids[:MAX_ITEMS]]
    request_id = kwargs.get("request_id")
    request = _request_of(args, kwargs)
    if request_id is None and isinstance(request, dict):
        request_id = request.get("request_id")
    if isinstance(request_id, str) and 0 < len(request_id) <= 200:
        return [booking_id_for(request_id)]
    # Positional arguments (a sender that ignored the contract's keyword arguments): a booking id,
    # or session ids, among them.
    for arg in list(args)[:5]:
        if isinstance(arg, str) and arg.startswith("bk_") and len(arg) <= 64:
            return [arg]
    if not lookup:
        return []
    sessions = kwargs.get("session_ids", kwargs.get("session_id"))
    if sessions is None:
        sessions = next((a for a in list(args)[:5] if isinstance(a, str) and a.startswith("ss_")
                         or isinstance(a, list) and a and isinstance(a[0], str) and a[0].startswith("ss_")), None)
    sessions = [sessions] if isinstance(sessions, str) else sessions
    if isinstance(sessions, list) and sessions and all(isinstance(s, str) and len(s) <= 64 for s in sessions):
        found = _booking_of_session(sessions[0])
        return [found] if found else []
    return []


@functools.lru_cache(maxsize=1)
def _lookup_engine(database_url: str):
    # Its own engine without a pool: this runs in the worker's consumer process, which forks the
    # pool's processes; a pooled connection inherited by a child would be closed under the parent.
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(database_url, poolclass=NullPool)


@functools.lru_cache(maxsize=4096)
def _booking_of_session(session_id: str) -> str | None:
    # A session never changes booking, so the answer can be kept.
    try:
        from sqlalchemy import select

        from core.wiring import get_container
        from models import Session

        engine = _lookup_engine(get_container().settings.database_url)
        with engine.connect() as conn:
            return conn.execute(select(Session.booking_id).where(Session.id == session_id)).scalar_one_or_none()
    except Exception as exc:  # noqa: BLE001 - a report must never fail a task
        log.debug("no booking id for a session: %s", type(exc).__name__)
        return None


def describe(task_name: str, args: Any, kwargs: Any, *, lookup: bool = False) -> tuple[str, str]:
    """(argsrepr, kwargsrepr) of a task message: redacted, bounded, with `booking_id` first in
    the kwargs repr. `lookup` allows the database read for messages naming sessions only."""
    args = args if isinstance(args, (list, tuple)) else ([] if args is None else [args])
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    try:
        bookings = _booking_ids(task_name, args, kwargs, lookup)
    except Exception:  # noqa: BLE001
        bookings = []
    shown: dict[str, Any] = {}
    if bookings:
        shown["booking_id"] = bookings[0] if len(bookings) == 1 else bookings
    for key, value in redact_value(kwargs).items():
        if key not in ("booking_id", "booking_ids"):
            shown[key] = value
    return saferepr(redact_value(list(args)), MAX_REPR), saferepr(shown, MAX_REPR)


class RedactingAMQP(AMQP):
    """Every message published by this app carries redacted reprs (whatever the caller passed)."""

    def as_task_v2(self, task_id, name, args=None, kwargs=None, *rest, **options):
        options["argsrepr"], options["kwargsrepr"] = describe(name, args, kwargs, lookup=True)
        return super().as_task_v2(task_id, name, args, kwargs, *rest, **options)


class RedactingRequest(Request):
    """The worker's view of a received message: reprs made from its arguments, never its own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            argsrepr, kwargsrepr = describe(self._type, self._args, self._kwargs, lookup=True)
        except Exception:  # noqa: BLE001 - never show the raw arguments instead
            argsrepr, kwargsrepr = "[unavailable]", "[unavailable]"
        self._argsrepr, self._kwargsrepr = argsrepr, kwargsrepr
        # What the pool process sees as the request (the failure log line reads these).
        self._request_dict["argsrepr"], self._request_dict["kwargsrepr"] = argsrepr, kwargsrepr


class RedactingTask(Task):
    """The app's task base class (`Celery(task_cls=...)`): its requests are `RedactingRequest`s."""

    Request = "worker.redaction:RedactingRequest"
