"""Grants: the proof a task message carries that someone holding SECRET_KEY (the CLI, the web
process) checked who asked for it.

A grant is `g1.<role>.<expires>.<signature>`: `role` is `admin` (the booking page administrator:
policies do not bind, refunds, approve, decline) or `customer` (the edge verified the customer's
manage tokens of the named sessions, so the message carries the grant instead of the tokens);
`expires` is a Unix time in seconds; the signature is HMAC-SHA256 with SECRET_KEY over the role,
the task name, the expiry and the task's canonical keyword arguments (`canonical_args`: every
argument but `grant` itself and those that are None, as sorted compact JSON). Changing any
argument, the task, the role or the expiry breaks it; so does another SECRET_KEY.

A grant is not a secret worth stealing: it authorizes exactly one message (the same arguments,
including the change id that makes the change idempotent), so replaying it changes nothing
twice. It is still hidden in what the worker reports (worker/redaction.py), like a token.

    grant = make_grant(secret_key, "sessionpack.refund_booking", kwargs, role="admin", now=c.clock())
    verify_grant(secret_key, "sessionpack.refund_booking", kwargs_with_grant, now=c.clock())  # -> Grant

`verify_grant` raises GrantRefused (an OperationFailed) with the code the caller names
(`admin_grant_required` for the administrator's actions).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from .errors import OperationFailed

VERSION = "g1"
ROLES = ("admin", "customer")
# How long a grant stays valid after the edge made it: long enough for a message to wait out a
# short broker outage in the task outbox, short enough that an old one is useless.
DEFAULT_TTL_MINUTES = 30
MAX_GRANT_LENGTH = 200
_PURPOSE = b"sessionpack/grant/v1"


class GrantRefused(OperationFailed):
    """A message that needed a grant had none, or one that does not hold for it."""


@dataclass(frozen=True)
class Grant:
    """A verified grant: who it speaks for, and until when (Unix seconds)."""

    role: str
    expires: int

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def canonical_args(kwargs: Mapping[str, Any]) -> bytes:
    """The arguments a grant is bound to: all but `grant` and None values, as sorted compact JSON
    (what a message's JSON body decodes to is what the edge encoded, so both sides agree)."""
    kept = {k: v for k, v in kwargs.items() if k != "grant" and v is not None}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signature(secret_key: str, role: str, task_name: str, expires: int, kwargs: Mapping[str, Any]) -> str:
    message = b"\n".join([_PURPOSE, role.encode(), task_name.encode(), str(expires).encode(), canonical_args(kwargs)])
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _unix(now: datetime) -> int:
    return int(now.timestamp())


def make_grant(secret_key: str, task_name: str, kwargs: Mapping[str, Any], *, role: str, now: datetime,
               ttl_minutes: float = DEFAULT_TTL_MINUTES) -> str:
    """A grant for exactly this task and these keyword arguments, valid `ttl_minutes` from `now`."""
    if role not in ROLES:
        raise ValueError(f"unknown grant role {role!r}")
    expires = _unix(now) + int(ttl_minutes * 60)
    return f"{VERSION}.{role}.{expires}.{_signature(secret_key, role, task_name, expires, kwargs)}"


def verify_grant(secret_key: str, task_name: str, kwargs: Mapping[str, Any], *, now: datetime,
                 role: str | None = None, code: str = "admin_grant_required") -> Grant:
    """The grant in `kwargs["grant"]` when it is genuine, made for this task and these arguments,
    not expired, and (when `role` is given) of that role. Otherwise GrantRefused with `code`; the
    message never repeats the grant."""
    grant = kwargs.get("grant")
    what = "the administrator's grant" if (role or "admin") == "admin" else "a customer grant"
    if not isinstance(grant, str) or not grant:
        raise GrantRefused(code, f"{task_name} needs {what}, signed with SECRET_KEY by the CLI or the web process; "
                                 "messages published on the broker cannot act as admin. Nothing was changed")
    parts = grant.split(".")
    if len(grant) > MAX_GRANT_LENGTH or len(parts) != 4 or parts[0] != VERSION or parts[1] not in ROLES \
            or not parts[2].isdigit() or not parts[3].isascii():
        raise GrantRefused(code, f"the grant of this {task_name} message is malformed; nothing was changed")
    _, grant_role, expires_text, signature = parts
    expires = int(expires_text)
    expected = _signature(secret_key, grant_role, task_name, expires, kwargs)
    if not hmac.compare_digest(signature, expected):
        raise GrantRefused(code, f"the grant of this {task_name} message does not match it (another task, other "
                                 "arguments, or another SECRET_KEY); nothing was changed")
    if role is not None and grant_role != role:
        raise GrantRefused(code, f"{task_name} needs {what}, this message carries a {grant_role} grant; "
                                 "nothing was changed", genuine=True)
    if _unix(now) > expires:
        # Genuine but late: the caller may record the refusal under the message's change id.
        raise GrantRefused(code, f"the grant of this {task_name} message expired; ask again (the CLI or the web "
                                 "page makes a new one); nothing was changed", genuine=True)
    return Grant(grant_role, expires)
