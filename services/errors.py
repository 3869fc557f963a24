"""Errors with stable codes. The CLI maps each class to its exit code; tasks decide retries by class.

Every message says what is wrong and how to fix it.
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base: an operation that ran and failed (exit 1)."""

    exit_code = 1

    def __init__(self, code: str, message: str, **details: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def __reduce__(self):
        # Celery pickles exceptions it reports (retries, failures); the default reduce would call
        # the constructor with only the message.
        return (_restore, (type(self), self.code, self.message, self.details, self.__dict__.copy()))


def _restore(cls: type, code: str, message: str, details: dict[str, Any], state: dict[str, Any]) -> "ServiceError":
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    error.code, error.message, error.details = code, message, details
    return error


class InvalidInput(ServiceError):
    """The input is invalid: bad file, unknown slug, rule conflict (exit 2). Never retried."""

    exit_code = 2


class OperationFailed(ServiceError):
    """The operation ran and was refused: declined card, slot taken, policy forbids (exit 1)."""

    exit_code = 1


class NotFound(InvalidInput):
    """An id or slug that does not exist (exit 2)."""


class Conflict(InvalidInput):
    """The input contradicts what was stored before, such as a request_id already used for a
    different request (exit 2; HTTP 409)."""


class Unavailable(ServiceError):
    """A service we depend on (database, broker) cannot be reached (exit 3)."""

    exit_code = 3


class TransientError(ServiceError):
    """A peer failed in a way that may pass: network, timeout, 5xx, 429. Worth retrying.

    `retry_after` (seconds) is set when the peer said how long to wait.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None, **details: Any):
        super().__init__(code, message, **details)
        self.retry_after = retry_after


class PermanentError(ServiceError):
    """A peer refused for good: 4xx, card declined, validation. Never retried."""
