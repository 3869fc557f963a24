"""Changes: one lifecycle request (a cancellation, a reschedule, a manual refund) is one change,
named by a deterministic `change_key` (the public task's id).

The key makes a change safe to run twice: every activity entry of a change carries it in its
details (`change`), every money movement derives its idempotency key from it, and a change that
was refused is recorded as `<kind>.refused` with the error. A redelivered task first asks what
became of its change, and a waiting CLI asks the same question.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Activity, Booking, LedgerEntry
from models.messaging import change_index

from ..errors import InvalidInput, OperationFailed, ServiceError, TransientError
from .access import booking_of, lock_booking

# Internal tasks that do a change's outside work after its transaction committed.
FINISH_CANCELLATION = "sessionpack.finish_cancellation"
SEND_REFUNDS = "sessionpack.send_refunds"
MOVE_MEETING = "sessionpack.move_meeting"

# The activity entries that mark a change as applied (written in the change's own transaction).
APPLIED_ACTIONS = ("session.cancelled", "session.rescheduled", "refund.requested")
MAX_REASON_LENGTH = 500
ID_COLUMN_LENGTH = 40  # activity.session_id


def refund_key(booking_id: str, change_key: str, part: int = 1) -> str:
    """The idempotency key of a change's refund; a refund split over several intents has parts."""
    base = f"{booking_id}-refund-{change_key}"
    return base if part == 1 else f"{base}.{part}"


def fee_key(booking_id: str, change_key: str) -> str:
    """The idempotency key of a reschedule's fee."""
    return f"{booking_id}-fee-{change_key}"


def change_of_fee(booking_id: str, key: str) -> str:
    """The change key a fee's idempotency key was made from (the inverse of `fee_key`)."""
    return key.removeprefix(fee_key(booking_id, ""))


def _keys_of_change(booking_id: str, change_key: str, key: str) -> bool:
    base = refund_key(booking_id, change_key)
    return key in (base, fee_key(booking_id, change_key)) or key.startswith(base + ".")


@dataclass(frozen=True)
class Outcome:
    """What became of a change: `applied`, or `refused` with the error it was refused with."""

    state: str
    error: ServiceError | None = None


def error_from(details: dict) -> ServiceError:
    """The error a refusal was recorded with, rebuilt with its class (hence its exit code)."""
    cls = InvalidInput if details.get("exit_code") == InvalidInput.exit_code else OperationFailed
    return cls(details.get("code", "refused"), details.get("message", "the change was refused"))


def entries_of_change_query(booking_id: str | None, change_key: str):
    """The query of a change's entries: through the index on `Activity.change_key`, so it costs
    the same with a million refusals of unknown ids stored (they have no booking) as with none."""
    return select(Activity).where(
        Activity.change_key == change_index(change_key),
        Activity.booking_id == booking_id if booking_id else Activity.booking_id.is_(None),
    ).order_by(Activity.id)


def _entries_of_change(db: Db, booking_id: str | None, change_key: str) -> Iterable[Activity]:
    # The details say the exact key (a long one as its digest, like the index).
    key = change_index(change_key)
    return (a for a in db.execute(entries_of_change_query(booking_id, change_key)).scalars()
            if (a.details or {}).get("change") == key)


def change_outcome(db: Db, booking_id: str | None, change_key: str) -> Outcome | None:
    """Applied, refused (with its error), or None while it has not been decided yet."""
    applied = False
    for entry in _entries_of_change(db, booking_id, change_key):
        # A refusal wins: a reschedule refused after its fee was charged has a refund entry too.
        if entry.action.endswith(".refused"):
            return Outcome("refused", error_from(entry.details))
        applied = applied or entry.action in APPLIED_ACTIONS
    return Outcome("applied") if applied else None


def begin_change(uow, change_key: str, *, session_ids: Sequence[str] = (), booking_id: str | None = None) -> bool:
    """Lock the change's booking and say whether the change was applied already (True: a
    redelivery, nothing to do). A change refused before is refused again with the same error."""
    booking_id = booking_id or booking_of(uow.db, session_ids)
    if booking_id is None:
        return False  # unknown session: the authorization that follows says so
    lock_booking(uow.db, booking_id)
    outcome = change_outcome(uow.db, booking_id, change_key)
    if outcome is not None and outcome.error is not None:
        raise outcome.error
    return outcome is not None


def money_pending(db: Db, booking_id: str, change_key: str) -> bool:
    """Whether a money movement of this change is still on its way to Stripe."""
    keys = db.execute(select(LedgerEntry.idempotency_key).where(
        LedgerEntry.booking_id == booking_id, LedgerEntry.status == "pending")).scalars()
    return any(_keys_of_change(booking_id, change_key, key) for key in keys)


def record_refusal_in(uow, kind: str, change_key: str, exc: ServiceError, *, booking_id: str | None,
                      session_id: str | None = None, actor: str = "system", **extra) -> None:
    """In this transaction: the `<kind>.refused` entry that `change_outcome` reads back as `exc`."""
    uow.record(f"{kind}.refused", booking_id=booking_id, session_id=session_id, actor=actor,
               change=change_key, code=exc.code, message=exc.message, exit_code=exc.exit_code, **extra)


def record_refusal(c, kind: str, change_key: str, exc: ServiceError, *, booking_id: str | None,
                   session_id: str | None = None, actor: str = "system", **extra) -> None:
    """Record once that a change was refused, so a redelivery or a waiting CLI gets the same answer.
    `extra` adds details (e.g. `task` for a `request.refused` entry)."""
    with c.uow() as uow:
        outcome = change_outcome(uow.db, booking_id, change_key)
        if outcome is not None and outcome.state == "refused":
            return
        record_refusal_in(uow, kind, change_key, exc, booking_id=booking_id, session_id=session_id, actor=actor,
                          **extra)
        uow.commit()


@contextlib.contextmanager
def recording_refusals(c, kind: str, change_key: str, *, actor: str, session_ids: Sequence[str] = (),
                       booking_id: str | None = None) -> Iterator[None]:
    """Around the work of a change: a refusal (any error but a transient one, which is retried)
    is recorded against the booking before it propagates."""
    try:
        yield
    except ServiceError as exc:
        if isinstance(exc, TransientError):
            raise
        ids = [session_ids] if isinstance(session_ids, str) else list(session_ids or [])
        with c.read() as db:
            # Recorded against the booking only when it exists (a refusal may be "unknown booking").
            known = booking_id if isinstance(booking_id, str) and db.get(Booking, booking_id) else booking_of(db, ids)
        # A made-up id longer than any of ours is not kept (the refusal's message says what was wrong).
        session_id = ids[0] if len(ids) == 1 and isinstance(ids[0], str) and len(ids[0]) <= ID_COLUMN_LENGTH else None
        record_refusal(c, kind, change_key, exc, booking_id=known, session_id=session_id, actor=actor)
        raise


def clean_reason(reason: str | None) -> str | None:
    """A reason as stored and shown: trimmed, None when empty, refused when too long."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidInput("invalid_reason", "the reason must be text")
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput("reason_too_long", f"the reason has {len(reason)} characters; keep it to {MAX_REASON_LENGTH}")
    return reason or None
