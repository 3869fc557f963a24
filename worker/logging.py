"""Structured logs: one JSON object per line, and never a secret.

Each line carries `timestamp` (UTC, ISO 8601), `level`, `logger` and `message`, plus what is
known of the work it is about: `booking_id`, `session_id`, `task`, `task_id` and `step`. Those
come from the log context (bound around every Celery task from its name and arguments by the
`task_prerun` signal, or by `log_context(...)` in any code), or from `extra={...}` on one call.
An `exception` field holds the traceback, if any.

Redaction happens on the record, before any handler formats it (`RedactingFilter`): manage
tokens, the configured secrets (SECRET_KEY, Stripe key, Zoom/Webex/GoTo secrets, passwords in
SMTP_URL, DATABASE_URL and BROKER_URL), Stripe-style keys, card numbers (13 to 19 digits),
`Authorization:` values and bearer tokens.

The worker and beat get this through Celery's `after_setup_logger` / `after_setup_task_logger`
signals: Celery still decides where logs go (stderr, or `--logfile`), we decide what a line
looks like. `worker/app.py` imports this module so that the signals are connected.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from celery.signals import after_setup_logger, after_setup_task_logger, task_postrun, task_prerun

CONTEXT_FIELDS = ("booking_id", "session_id", "task", "task_id", "step")

# Shorter configured secrets are not redacted literally: replacing every "abc" in every line
# would garble the logs and protect nothing a guess would not find.
MIN_SECRET_LENGTH = 4

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("sessionpack_log_context", default={})

# -- the log context -----------------------------------------------------------------------------


def bind(**fields: Any) -> contextvars.Token:
    """Add fields to the log context; returns the token `unbind` needs to undo it."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def unbind(token: contextvars.Token) -> None:
    _context.reset(token)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, every log line carries these fields (booking_id=..., step=...)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


# -- redaction -----------------------------------------------------------------------------------
# (pattern, replacement) applied to every message and traceback, whatever the settings say.
_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    # `Authorization: Bearer xyz`, `"Authorization": "Basic xyz"`, `authorization=xyz`
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token)\s+)?[^\s'\",;]+"),
     r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), r"\1 [redacted]"),
    # Stripe secret, restricted and webhook keys, whoever logs them.
    (re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+"), "[secret]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "[secret]"),
    # The password of any URL: scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1[secret]@"),
    # Card numbers: a run of 13-19 digits (not the tail of a decimal such as a runtime
    # 0.01877312499983236), or four-digit groups split by one repeated space or dash.
    (re.compile(r"(?<![\d.])\d{13,19}(?!\d)"), "[card]"),
    (re.compile(r"(?<![\w-])\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}(?![\w-])"), "[card]"),
)


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def settings_secrets(settings) -> list[str]:
    """Every secret value the settings hold."""
    return [v for v in (
        settings.secret_key, settings.stripe_api_key, settings.stripe_webhook_secret, settings.zoom_client_secret,
        settings.webex_token, settings.goto_token, _url_password(settings.smtp_url),
        _url_password(settings.database_url), _url_password(settings.broker_url),
    ) if v]


class Redactor:
    """Replaces secrets in text: the given literal values, manage tokens, and the patterns above."""

    def __init__(self, secrets: Iterable[str] = ()):
        literal = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal))) if literal else None

    @classmethod
    def from_settings(cls, settings) -> "Redactor":
        return cls(settings_secrets(settings))

    def __call__(self, text: str) -> str:
        from services.tokens import redact as redact_tokens

        if self._literal is not None:
            text = self._literal.sub("[secret]", text)
        text = redact_tokens(text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites the record's message and traceback through a `Redactor`.

    It works on the record itself (message merged with its arguments, traceback rendered once),
    so whichever formatter runs next, JSON or plain, has nothing secret left to print.
    """

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: let the handler report it
            return True
        record.msg, record.args = self.redactor(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


# -- the format ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get()
        for name in CONTEXT_FIELDS:
            # An explicit extra={...} on the call wins over the ambient context.
            value = getattr(record, name, None)
            value = context.get(name) if value is None else value
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # Only the fields above: never a record's other attributes (Celery puts task arguments,
        # manage tokens included, in `record.data`).
        return json.dumps(entry, ensure_ascii=False, default=str)


def install(handler: logging.Handler, redactor: Redactor) -> logging.Handler:
    """Make a handler write redacted JSON lines (idempotent)."""
    handler.setFormatter(JsonFormatter())
    for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
        handler.removeFilter(old)
    handler.addFilter(RedactingFilter(redactor))
    return handler


def json_handler(stream, redactor: Redactor) -> logging.Handler:
    """A stream handler writing redacted JSON lines (tests, scripts)."""
    return install(logging.StreamHandler(stream), redactor)


# -- Celery --------------------------------------------------------------------------------------
_redactor: Redactor | None = None


def _settings_redactor() -> Redactor:
    global _redactor
    if _redactor is None:
        from core.settings import Settings

        _redactor = Redactor.from_settings(Settings())
    return _redactor


def _install_on(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        install(handler, _settings_redactor())


@after_setup_logger.connect
def _json_root_logger(logger: logging.Logger, **_kwargs) -> None:
    """Celery made the root logger's handler (stderr or --logfile): give it our format."""
    from celery.utils.log import get_multiprocessing_logger

    _install_on(logger)
    mp_logger = get_multiprocessing_logger()
    if mp_logger is not None:
        _install_on(mp_logger)


@after_setup_task_logger.connect
def _json_task_logger(logger: logging.Logger, **_kwargs) -> None:
    """The `celery.task` logger has a handler of its own (it does not propagate)."""
    _install_on(logger)


# Steps outside the saga's TASK_FOR_STEP table, by public task name.
_OTHER_STEPS = {
    "sessionpack.submit_booking": "hold",
    "sessionpack.send_emails": "notify",
    "sessionpack.cancel_sessions": "cancel",
    "sessionpack.reschedule_session": "reschedule",
    "sessionpack.refund_booking": "refund",
}


def step_of(task_name: str) -> str | None:
    """The saga or lifecycle step a task performs, for the `step` field."""
    from services.booking import TASK_FOR_STEP

    steps = {task: step for step, task in TASK_FOR_STEP.items()}
    return steps.get(task_name) or _OTHER_STEPS.get(task_name)


def task_fields(task_name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """What the log context knows of a task from its name and arguments."""
    from services.booking.ids import booking_id_for

    kwargs = kwargs if isinstance(kwargs, dict) else {}
    booking_id = kwargs.get("booking_id")
    request = kwargs.get("request") or (args[0] if args else None)
    if booking_id is None and isinstance(request, dict) and isinstance(request.get("request_id"), str):
        booking_id = booking_id_for(request["request_id"])  # submit_booking: the id it will make
    session_id = kwargs.get("session_id")
    session_ids = kwargs.get("session_ids")
    if session_id is None and isinstance(session_ids, (list, tuple)) and len(session_ids) == 1:
        session_id = session_ids[0]
    elif session_id is None and isinstance(session_ids, str):
        session_id = session_ids
    return {"task": task_name, "step": step_of(task_name), "booking_id": booking_id,
            "session_id": session_id if isinstance(session_id, str) else None}


_task_tokens: dict[str, contextvars.Token] = {}


@task_prerun.connect
def _bind_task(task_id: str = None, task=None, args=None, kwargs=None, **_kwargs) -> None:
    try:
        fields = task_fields(getattr(task, "name", "?"), args or (), kwargs or {})
    except Exception:  # noqa: BLE001 - logging context must never fail a task
        fields = {"task": getattr(task, "name", None)}
    # A fresh context, not merged into the current one: nothing of an earlier task (whose
    # postrun may never have come, in a crashed run) can stick to this one's lines.
    fields = {"task_id": task_id, **fields}
    _task_tokens[task_id] = _context.set({k: v for k, v in fields.items() if v is not None})


@task_postrun.connect
def _unbind_task(task_id: str = None, **_kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            unbind(token)
        except ValueError:  # bound in another context (a thread pool): nothing of ours to undo
            pass
