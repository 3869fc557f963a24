"""The one way an edge (the CLI, the web pages, the HTTP API) asks for a change of a booking.

Each `request_*` function checks authority and everything that can be checked now, at the edge,
with the same service functions the worker uses (tokens, policy windows, the new time, amounts,
"awaiting approval"), and raises the service's error (InvalidInput, NotFound, OperationFailed, with
their stable codes and exit codes) before anything is queued. Then, in one unit of work, it writes
a task-outbox row whose message carries a **grant** (services/grants.py) instead of any token:
an admin grant for the administrator, a customer grant bound to the session ids for the customer.
The row is sent to the broker after commit (`Container.dispatch_tasks`; beat's sweep sends it if
the broker was down). The function returns the change id (a `ChangeId`, which is a `str`) to poll
with `change_status`.

    change = request_cancel(c, ["ss_..."], tokens=["ss_....sig"], reason="ill")    # customer
    change = request_cancel(c, ["ss_..."], admin=True, refund=False)                # administrator
    change = request_reschedule(c, "ss_...", "2026-12-09T15:00:00Z", token="...")
    change = request_refund(c, "bk_...", "12.50", reason="goodwill", refund_id="rf-123")
    change = request_approve(c, "bk_...");  change = request_decline(c, "bk_...", reason="full")
    str(change)          # "ch_..." (refunds: "rf-<refund_id>", approve "ap_...", decline "dc_...")
    change.booking_id    # "bk_..."
    change.plan          # what the edge checked: refund/fee in cents, currency, new start...
    change_status(c, change.booking_id, str(change))
    # -> {"change_id", "booking_id", "state": "queued"|"applied"|"done"|"refused",
    #     "error": None | {"code", "message"}, "booking_status": "..."}

`actor` names who acted as the administrator in the activity stream (`owner:<id>` for the owner
console, `apikey:<name>` for an admin API key; `access.admin_actor` makes one); None is `admin`
(the CLI's --admin). It travels as the task's `actor` argument, so the admin grant binds it: a
message whose actor was changed on the broker is refused. A customer's request never has one.

`admin=True` means the caller has authenticated the booking page administrator (the CLI's
`--admin` run by whoever holds SECRET_KEY, the owner console's login, an `--admin` API key):
these functions cannot check that themselves. Customers are checked here: their tokens must be
the sessions' manage tokens.

Idempotency: a change id names one change; the same change id (a refund's `refund_id`) asked for
again, or its message republished, changes nothing twice. `change_id=None` makes a fresh one
(a new change per call); pass your own (`[A-Za-z0-9_.:-]{1,80}`) to make retries of one
form post or API call idempotent. Refunds: `refund_id` is the caller's idempotency key; without
it each call is a new refund.
"""
from __future__ import annotations

import re
import secrets
from typing import Any, Sequence

from ..errors import InvalidInput
from ..grants import make_grant

CANCEL_TASK = "sessionpack.cancel_sessions"
RESCHEDULE_TASK = "sessionpack.reschedule_session"
REFUND_TASK = "sessionpack.refund_booking"
APPROVE_TASK = "sessionpack.approve_booking"
DECLINE_TASK = "sessionpack.decline_booking"

_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_KIND_PREFIX = {"approve": "ap_", "decline": "dc_"}
# Prefixes of the change ids we make ourselves: `change_status` reads an approval or a decline
# from its prefix, and a refund's change is keyed `rf-<refund_id>`; a caller's own change_id with
# one of them would be misreported (or meet a refund's key), so it is refused.
RESERVED_PREFIXES = ("ap_", "dc_", "rf-")


def reserved_prefix(value: str) -> str | None:
    """The internal prefix a caller's change id starts with (any case), if any."""
    return next((p for p in RESERVED_PREFIXES if value[:len(p)].lower() == p), None)


def reserved_message(prefix: str) -> str:
    return (f"change_id must not start with {prefix!r}: ap_, dc_ and rf- are sessionpack's own change ids; "
            "choose another change_id (or leave it out for a fresh one)")


class ChangeId(str):
    """A change id; also carries `booking_id` and `plan` (what the edge checked) for the caller."""

    booking_id: str
    plan: dict

    def __new__(cls, value: str, booking_id: str, plan: dict | None = None) -> "ChangeId":
        obj = super().__new__(cls, value)
        obj.booking_id, obj.plan = booking_id, dict(plan or {})
        return obj


def new_change_id(kind: str = "change") -> str:
    return _KIND_PREFIX.get(kind, "ch_") + secrets.token_hex(12)


def _key(value: str | None, what: str, kind: str = "change") -> str:
    if value is None:
        return new_change_id(kind)
    if not isinstance(value, str) or not _KEY.match(value):
        raise InvalidInput(f"invalid_{what}", f"{what} must be 1 to 80 letters, digits or . _ : - (it is the "
                                              "change's idempotency key)")
    prefix = reserved_prefix(value) if what == "change_id" else None
    if prefix is not None and prefix != _KIND_PREFIX.get(kind):  # an approval's own ap_ is its kind's
        raise InvalidInput("invalid_request", reserved_message(prefix))
    return value


def _actor(actor: str | None, admin: bool) -> str | None:
    """The administrator's name for the message (None: `admin`); refused for a customer."""
    from .access import ADMIN_ACTOR

    if actor is None or actor == "admin":
        return None
    if admin is not True:
        raise InvalidInput("invalid_request", "only the administrator's change names an actor")
    if not isinstance(actor, str) or not ADMIN_ACTOR.match(actor):
        raise InvalidInput("invalid_actor", "actor is admin, owner:<id> or apikey:<name> (at most 64 characters)")
    return actor


def _send(c, task_name: str, kwargs: dict[str, Any], *, role: str) -> None:
    """The message, with its grant, in the task outbox: one unit of work, sent after commit.
    The grant is bound to every argument, the administrator's `actor` included."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    kwargs["grant"] = make_grant(c.settings.secret_key, task_name, kwargs, role=role, now=c.clock(),
                                 ttl_minutes=c.settings.grant_ttl_minutes)
    with c.uow() as uow:
        uow.enqueue(task_name, **kwargs)
        uow.commit()


def request_cancel(c, session_ids: Sequence[str], *, tokens: Sequence[str] | None = None, admin: bool = False,
                   refund: bool = True, reason: str | None = None, change_id: str | None = None,
                   actor: str | None = None) -> ChangeId:
    """Cancel sessions of one booking, as the customer (`tokens`, one per session, same order) or
    the administrator (`admin=True`, no policy window; `refund=False` cancels without refund).
    A request awaiting approval is withdrawn as a whole. Raises what `preview_cancel` raises.
    `plan`: {"booking_id", "session_ids", "refund_cents", "currency", "withdraw"}."""
    from .cancel import preview_cancel

    actor = _actor(actor, admin)
    ids = [session_ids] if isinstance(session_ids, str) else list(session_ids or [])
    toks = ([tokens] if isinstance(tokens, str) else list(tokens)) if tokens else None
    key = _key(change_id, "change_id")
    plan = preview_cancel(c, ids, toks, admin is True, refund, reason)
    _send(c, CANCEL_TASK, {"session_ids": ids, "booking_id": plan["booking_id"], "admin": True if admin is True else None,
                           "refund": bool(refund), "reason": reason, "change_id": key, "actor": actor},
          role="admin" if admin is True else "customer")
    return ChangeId(key, plan["booking_id"], plan)


def request_reschedule(c, session_id: str, to: str, *, token: str | None = None, admin: bool = False,
                       change_id: str | None = None, actor: str | None = None) -> ChangeId:
    """Move one session to `to` (ISO 8601 with an offset), as the customer (`token`; the policy's
    fee is charged by the worker) or the administrator (no window, no fee). Raises what
    `preview_reschedule` raises. `plan`: {"booking_id", "session_id", "start", "fee_cents", "currency"}."""
    from .reschedule import preview_reschedule

    actor = _actor(actor, admin)
    key = _key(change_id, "change_id")
    plan = preview_reschedule(c, session_id, to, token=token, admin=admin is True)
    _send(c, RESCHEDULE_TASK, {"session_id": session_id, "to": to, "booking_id": plan["booking_id"],
                               "admin": True if admin is True else None, "change_id": key, "actor": actor},
          role="admin" if admin is True else "customer")
    return ChangeId(key, plan["booking_id"], plan)


def request_refund(c, booking_id: str, amount: str, *, reason: str | None = None, refund_id: str | None = None,
                   admin: bool = True, actor: str | None = None) -> ChangeId:
    """Refund `amount` ("12.50") of a booking, as the administrator (the only one who may).
    `refund_id` is the idempotency key (the same one refunds once); None makes a new refund.
    The change id is `rf-<refund_id>`. `plan`: {"booking_id", "amount_cents", "currency", "refund_id"}."""
    from .manual import preview_refund

    if admin is not True:
        raise InvalidInput("admin_required", "manual refunds are made by the booking page's administrator")
    actor = _actor(actor, True)
    plan = preview_refund(c, booking_id, amount, admin=True, reason=reason)
    refund_id = _key(refund_id, "refund_id") if refund_id is not None else secrets.token_hex(12)
    _send(c, REFUND_TASK, {"booking_id": booking_id, "amount": amount, "admin": True, "reason": reason,
                           "refund_id": refund_id, "actor": actor}, role="admin")
    return ChangeId(f"rf-{refund_id}", booking_id, {**plan, "refund_id": refund_id})


def _check_awaiting(c, booking_id: str) -> None:
    from ..booking import load_awaiting

    if not isinstance(booking_id, str):
        raise InvalidInput("invalid_request", "name the booking by its id (bk_...)")
    with c.uow() as uow:
        load_awaiting(uow, booking_id, allow=())


def request_approve(c, booking_id: str, *, change_id: str | None = None, actor: str | None = None) -> ChangeId:
    """Approve a request awaiting approval (administrator). Raises `unknown_booking` or
    `not_awaiting_approval` now; the booking workflow then runs to confirmation."""
    actor = _actor(actor, True)
    _check_awaiting(c, booking_id)
    key = _key(change_id, "change_id", "approve")
    _send(c, APPROVE_TASK, {"booking_id": booking_id, "change_id": key, "actor": actor}, role="admin")
    return ChangeId(key, booking_id, {"booking_id": booking_id, "kind": "approve"})


def request_decline(c, booking_id: str, *, reason: str | None = None, change_id: str | None = None,
                    actor: str | None = None) -> ChangeId:
    """Decline a request awaiting approval (administrator): slots released, the customer told."""
    from .changes import clean_reason

    actor = _actor(actor, True)
    clean_reason(reason)
    _check_awaiting(c, booking_id)
    key = _key(change_id, "change_id", "decline")
    _send(c, DECLINE_TASK, {"booking_id": booking_id, "reason": reason, "change_id": key, "actor": actor},
          role="admin")
    return ChangeId(key, booking_id, {"booking_id": booking_id, "kind": "decline"})


def change_status(c, booking_id: str, change_id: str) -> dict[str, Any]:
    """What became of a change asked for with `request_*`:

    - `queued`: not decided yet (in the outbox, on the queue, or running);
    - `applied`: decided and written (a cancellation's refund or a manual refund may still be on
      its way to Stripe; an approved booking's workflow is running);
    - `done`: applied and its money has reached Stripe (approve: the workflow finished);
    - `refused`: refused, `error` says why ({"code", "message"}), nothing changed.
    """
    from models import Booking

    from .changes import change_outcome, money_pending

    with c.read() as db:
        booking = db.get(Booking, booking_id) if isinstance(booking_id, str) else None
        status = booking.status if booking is not None else None
        outcome = change_outcome(db, booking.id if booking is not None else None, str(change_id))
        state, error = "queued", None
        if outcome is not None and outcome.state == "refused":
            state, error = "refused", outcome.error.as_dict()
        elif str(change_id).startswith(("ap_", "dc_")) and booking is not None:
            state = ("queued" if status == "awaiting_approval" else "applied" if status == "pending" else "done")
        elif outcome is not None:
            state = "applied" if money_pending(db, booking.id, str(change_id)) else "done"
    return {"change_id": str(change_id), "booking_id": booking_id, "state": state, "error": error,
            "booking_status": status}
