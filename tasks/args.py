"""The public tasks' arguments: typed, bounded, and checked for authority before anything runs.

Each public task takes keyword arguments only, validated by a pydantic model below: `admin` is
JSON `true` or `false` (or absent), never a string; every string has a length limit; a key the
model does not know is refused. Admin actions (`admin: true`, refunds, approve, decline) need a
valid admin grant (services/grants.py); a customer grant stands in for the customer's tokens.

A message refused here changes nothing: `accept` records `request.refused` in the activity stream
(against the booking when it is known; `change` is the change id, or the task id) and the task
answers `{"error": {...}}`, as it does for any other refusal. The message of a refusal never
repeats the argument's value (it may be a token).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError, field_validator

from services.errors import InvalidInput, ServiceError
from services.grants import GrantRefused, verify_grant

log = logging.getLogger("sessionpack.tasks.args")

from services.lifecycle.requests import (  # noqa: E402  (the edge and the worker share the names)
    APPROVE_TASK as APPROVE, CANCEL_TASK as CANCEL, DECLINE_TASK as DECLINE, REFUND_TASK as REFUND,
    RESCHEDULE_TASK as RESCHEDULE, reserved_message, reserved_prefix,
)

SUBMIT = "sessionpack.submit_booking"

# Bounds. Ids are ours (bk_/ss_ and 24 characters); the services say which ids do not exist.
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# The services refuse a reason over 500 characters with their own code (`reason_too_long`).
Reason = Annotated[str, StringConstraints(max_length=2000)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:-]+$")]
GrantText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Who acted as the administrator (services/lifecycle/access.py ADMIN_ACTOR): `admin`,
# `owner:<id>`, `apikey:<name>`. Only with an admin grant, which binds it like every argument.
ActorText = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                             pattern=r"^(admin|(owner|apikey):[A-Za-z0-9_.:~@+-]{1,57})$")]
MAX_REQUEST_BYTES = 64 * 1024


class TaskArgs(BaseModel):
    """What every public lifecycle task may carry besides its own arguments: `change_id` (the
    idempotency key of the change: a message republished with the same one changes nothing
    twice) and `grant`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    # The one internal change-id prefix this task's own change ids carry (approve: ap_, decline: dc_).
    own_prefix: ClassVar[str | None] = None
    change_id: Key | None = None
    grant: GrantText | None = None
    actor: ActorText | None = None

    @field_validator("change_id")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        prefix = reserved_prefix(value) if value is not None else None
        if prefix is not None and prefix != cls.own_prefix:
            raise ValueError(reserved_message(prefix))
        return value


class CancelArgs(TaskArgs):
    session_ids: list[Id] | Id = Field(max_length=100)
    tokens: list[Token] | Token | None = Field(default=None, max_length=100)
    admin: StrictBool = False
    refund: StrictBool = True
    no_refund: StrictBool = False
    reason: Reason | None = None
    booking_id: Id | None = None  # shown in Flower; must be the sessions' booking

    @property
    def ids(self) -> list[str]:
        return [self.session_ids] if isinstance(self.session_ids, str) else list(self.session_ids)


class RescheduleArgs(TaskArgs):
    session_id: Id
    to: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    token: Token | None = None
    admin: StrictBool = False
    booking_id: Id | None = None

    @property
    def ids(self) -> list[str]:
        return [self.session_id]


class RefundArgs(TaskArgs):
    booking_id: Id
    amount: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    admin: StrictBool = True
    reason: Reason | None = None
    # The caller's idempotency key: the same refund_id refunds once, whatever the task id.
    refund_id: Key | None = None


class ApproveArgs(TaskArgs):
    own_prefix: ClassVar[str | None] = "ap_"
    booking_id: Id
    admin: StrictBool = True


class DeclineArgs(TaskArgs):
    own_prefix: ClassVar[str | None] = "dc_"
    booking_id: Id
    reason: Reason | None = None
    admin: StrictBool = True


MODELS: dict[str, type[TaskArgs]] = {
    CANCEL: CancelArgs, RESCHEDULE: RescheduleArgs, REFUND: RefundArgs, APPROVE: ApproveArgs, DECLINE: DeclineArgs,
}
# Tasks that only the administrator may ask for, whatever their `admin` argument says.
ADMIN_ONLY = frozenset({REFUND, APPROVE, DECLINE})


def change_key_of(task_id: str, args: TaskArgs) -> str:
    """The change's key: a refund's `refund_id` (prefixed, so it never meets another change's
    key), else the message's `change_id`, else the task id (a redelivery keeps it). Only for a
    message whose grant was verified (`accept`); a message without one is keyed by its task id."""
    refund_id = getattr(args, "refund_id", None)
    if refund_id:
        return f"rf-{refund_id}"
    return args.change_id or task_id


@dataclass(frozen=True)
class Accepted:
    """A message that passed: its arguments, its change key, and who it speaks for."""

    args: Any
    change_key: str
    admin: bool  # an admin grant was verified
    customer_granted: bool = False  # a customer grant stands in for the tokens

    @property
    def actor(self) -> str | None:
        """Who acted as the administrator, as the edge named them under the admin grant (None:
        `admin`, the CLI's --admin); never anything for a customer's message."""
        return self.args.actor if self.admin else None

    def tokens_for(self, c, session_ids: list[str]) -> list[str] | None:
        """The manage tokens of sessions a customer grant covers (the worker makes them itself: the
        edge checked the customer's, and no token travelled on the queue); else the message's."""
        if not self.customer_granted:
            return None
        from services.tokens import make_manage_token

        return [make_manage_token(c.settings.secret_key, s) for s in session_ids]


class Refused(Exception):
    """Raised by `accept`; `answer` is what the task returns."""

    def __init__(self, error: ServiceError):
        super().__init__(error.code)
        self.error = error

    @property
    def answer(self) -> dict:
        return {"error": self.error.as_dict()}


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p)[:40] for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown argument {where!r}")
        else:
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def parse(task_name: str, args: tuple, kwargs: dict) -> TaskArgs:
    """The validated arguments of a public lifecycle task, or InvalidInput(`invalid_request`)."""
    if args:
        raise InvalidInput("invalid_request", f"{task_name} takes keyword arguments only (as in CONTRACT.md), "
                                              f"not {len(args)} positional argument(s); nothing was changed")
    try:
        return MODELS[task_name].model_validate(kwargs)
    except ValidationError as exc:
        raise InvalidInput("invalid_request", f"{task_name} refused: {_describe(exc)}; nothing was changed") from None


def authorize(c, task_name: str, kwargs: dict, parsed: TaskArgs) -> tuple[bool, bool]:
    """(admin, customer_granted) for a parsed message, or GrantRefused.

    An admin action needs a valid admin grant (`admin_grant_required`); a customer grant must be
    valid (`invalid_grant`) and comes without tokens; a message with neither carries the
    customer's tokens, which the service checks."""
    now, key = c.clock(), c.settings.secret_key
    wants_admin = task_name in ADMIN_ONLY or getattr(parsed, "admin", False) is True
    if wants_admin:
        verify_grant(key, task_name, kwargs, now=now, role="admin", code="admin_grant_required")
        return True, False
    if parsed.actor is not None:
        raise InvalidInput("invalid_request", "actor names the administrator, and comes only with an admin grant; "
                                              "nothing was changed")
    if parsed.grant is not None:
        if getattr(parsed, "tokens", None) or getattr(parsed, "token", None):
            raise InvalidInput("conflicting_authorization", "a message carries either a customer grant or the "
                                                            "customer's tokens, not both; nothing was changed")
        verify_grant(key, task_name, kwargs, now=now, role="customer", code="invalid_grant")
        return False, True
    return False, False


def _known_booking(c, kwargs: dict) -> tuple[str | None, str | None]:
    """The booking (and single session) a message names, when they exist: for the refusal entry."""
    from models import Booking
    from services.lifecycle.access import booking_of

    ids = kwargs.get("session_ids", kwargs.get("session_id"))
    ids = [ids] if isinstance(ids, str) else ids if isinstance(ids, list) else []
    ids = [s for s in ids[:100] if isinstance(s, str) and len(s) <= 64]
    booking_id = kwargs.get("booking_id")
    with c.session_factory() as db:
        if isinstance(booking_id, str) and len(booking_id) <= 64 and db.get(Booking, booking_id) is not None:
            return booking_id, ids[0] if len(ids) == 1 else None
        return (booking_of(db, ids) if ids else None), (ids[0] if len(ids) == 1 else None)


def record_refused(c, task_name: str, change_key: str, kwargs: Any, exc: ServiceError, *,
                   request_id: str | None = None) -> None:
    """`request.refused` in the activity stream (once per change), against the booking if known.
    `request_id` is the sender's own id for it when it has one (a booking request's); a
    `booking_page` named in `kwargs` routes the page's `request.refused` webhooks."""
    from services.lifecycle.changes import record_refusal

    kwargs = kwargs if isinstance(kwargs, dict) else {}
    page = kwargs.get("booking_page")
    extra = {"booking_page": page} if isinstance(page, str) and 0 < len(page) <= 64 else {}
    try:
        booking_id, session_id = _known_booking(c, kwargs)
    except Exception:  # noqa: BLE001 - a refusal is recorded even when the ids are garbage
        booking_id, session_id = None, None
    record_refusal(c, "request", change_key, exc, booking_id=booking_id, session_id=session_id, actor="system",
                   task=task_name, request_id=request_id or change_key, **extra)


def accept(c, task, args: tuple, kwargs: dict) -> Accepted:
    """Parse and authorize a public lifecycle task's message; raise Refused (already recorded)."""
    # The message's own change id counts only once its grant is verified: a forged message must
    # not be able to record a refusal (or a change) under the change id of a genuine one.
    change_key = task.request.id
    try:
        parsed = parse(task.name, args, kwargs)
        try:
            admin, customer_granted = authorize(c, task.name, kwargs, parsed)
        except GrantRefused as exc:
            if exc.details.get("genuine"):
                change_key = change_key_of(task.request.id, parsed)
            raise
        if parsed.grant is not None:
            change_key = change_key_of(task.request.id, parsed)
        if isinstance(parsed, (CancelArgs, RescheduleArgs)) and parsed.booking_id is not None:
            _check_booking_label(c, parsed)
    except (InvalidInput, GrantRefused) as exc:
        log.info("%s refused: %s", task.name, exc.code)  # never the arguments: they may hold tokens
        record_refused(c, task.name, change_key, kwargs, exc)
        raise Refused(exc) from None
    return Accepted(parsed, change_key, admin, customer_granted)


def accepting(body):
    """Decorate a public task's body `body(task, container, accepted)`: the task takes the raw
    message (`*args, **kwargs`), and answers a refused one with `{"error": ...}` (recorded)."""

    @functools.wraps(body)
    def run(self, *args: Any, **kwargs: Any):
        from .base import container

        c = container()
        try:
            ok = accept(c, self, args, kwargs)
        except Refused as refused:
            return refused.answer
        return body(self, c, ok)

    del run.__wrapped__  # Celery reads the signature: the raw message's, not the body's
    return run


def _check_booking_label(c, parsed) -> None:
    from services.lifecycle.access import booking_of

    with c.session_factory() as db:
        actual = booking_of(db, parsed.ids)
    if actual is not None and actual != parsed.booking_id:
        raise InvalidInput("invalid_request", "booking_id is not the booking of the named sessions; nothing was changed")


def peek_submit(args: tuple, kwargs: dict) -> dict:
    """What a refused `submit_booking` message says about itself, so its refusal reaches the
    sender: {"request_id", "booking_page"} read from the request, even when it was sent as a JSON
    string instead of an object (a frontend's double encoding); {} when there is nothing usable."""
    import json

    raw = args[0] if len(args) == 1 else kwargs.get("request") if isinstance(kwargs, dict) else None
    if isinstance(raw, (str, bytes)) and len(raw) <= MAX_REQUEST_BYTES:
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            return {}
    if not isinstance(raw, dict):
        return {}
    found = {}
    for name, limit in (("request_id", 200), ("booking_page", 64)):
        value = raw.get(name)
        if isinstance(value, str) and 0 < len(value) <= limit and "\x00" not in value:
            found[name] = value
    return found


def parse_submit(args: tuple, kwargs: dict) -> Any:
    """`submit_booking`'s one argument, the request object (positional, or `request=`), bounded in
    size. Its content is validated by the booking service (services/booking/request.py)."""
    import json

    if kwargs and set(kwargs) != {"request"} or (args and kwargs) or len(args) > 1 or not (args or kwargs):
        raise InvalidInput("invalid_request", "sessionpack.submit_booking takes the booking request object as its "
                                              "only argument")
    request = args[0] if args else kwargs["request"]
    if not isinstance(request, dict):
        raise InvalidInput("invalid_request", "the booking request must be a JSON object")
    if len(json.dumps(request, default=str)) > MAX_REQUEST_BYTES:
        raise InvalidInput("invalid_request", f"the booking request is larger than {MAX_REQUEST_BYTES // 1024} KiB")
    return request
