"""What every phase of the booking saga shares: the step order, the task of each step, the
saga log (`saga_steps`) and loading a booking at its step.

The saga: hold -> authorize -> conferencing -> capture (pivot: confirm, notify, remind).
A booking none of whose steps after the hold calls out (no price; no meetings, or a provider
that makes them without an API) runs them all in the hold's transaction (`at_once`).
Each step is a function of (container, booking_id) that a thin Celery task calls. The booking
row carries the saga's next step (`saga_step`), and every step outcome is kept in `saga_steps`,
so any worker can resume a booking and every step is safe to run twice: a step that finds the
booking elsewhere in the saga does nothing. Before the pivot a failure runs the compensations
(delete meetings, cancel the authorization, release the slots) and the booking ends `failed`.

The phases, each in its module: `submit` (validate and hold), `steps` (authorize, conferencing,
capture), `confirm` (the pivot's transaction), `compensate` (failure and undo), `approval`
(manual booking mode) and `resume` (stalled bookings).
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import select

from models import Booking, SagaStep, db_now


TASK_FOR_STEP = {
    "authorize": "sessionpack.authorize_payment",
    "conferencing": "sessionpack.provision_conferencing",
    "capture": "sessionpack.capture_payment",
    "compensate": "sessionpack.compensate_booking",
}
STEP_ORDER = ("authorize", "conferencing", "capture")


def money_key(booking_id: str, step: str) -> str:
    """Deterministic idempotency key of one money movement of the saga."""
    return f"{booking_id}-{step}"


def upsert(db):
    """The dialect's INSERT with ON CONFLICT support (PostgreSQL and SQLite both have it)."""
    if db.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_MARK_STEPS: dict[str, Any] = {}


def _mark_steps_statement(db):
    """The saga log's upsert, built once per dialect: reusing one statement object lets
    SQLAlchemy skip building and hashing a new construct for each of a booking's ~7 marks."""
    dialect = db.bind.dialect.name
    stmt = _MARK_STEPS.get(dialect)
    if stmt is None:
        stmt = upsert(db)(SagaStep)
        stmt = _MARK_STEPS[dialect] = stmt.on_conflict_do_update(
            index_elements=["booking_id", "step"],
            set_={"outcome": stmt.excluded.outcome, "error": stmt.excluded.error, "updated_at": stmt.excluded.updated_at,
                  "attempts": SagaStep.attempts + stmt.excluded.attempts})
    return stmt


def mark_step(db, booking_id: str, step: str, outcome: str, error: dict | None = None) -> None:
    """Record a step's latest outcome in the saga log (one upsert statement)."""
    mark_steps(db, booking_id, (step,), outcome, error)


def mark_steps(db, booking_id: str, steps: Iterable[str], outcome: str, error: dict | None = None) -> None:
    """Record the same outcome for several steps in one round trip; `started` counts an attempt."""
    now, started = db_now(db), 1 if outcome == "started" else 0
    # Core, not the ORM's bulk path: the saga log is never read back in the same transaction.
    db.connection().execute(_mark_steps_statement(db), [
        {"booking_id": booking_id, "step": step, "outcome": outcome, "error": error, "attempts": started,
         "updated_at": now} for step in steps])


def next_step(booking: Booking, after: str | None) -> str:
    """The step after `after`, skipping what this booking does not need."""
    needed = {
        "authorize": booking.price_cents > 0,
        "conferencing": booking.terms.get("conferencing_provider", "none") != "none",
        "capture": True,
    }
    start = 0 if after is None else STEP_ORDER.index(after) + 1
    return next(step for step in STEP_ORDER[start:] if needed[step])


def advance(uow, booking: Booking, done_step: str) -> None:
    mark_step(uow.db, booking.id, done_step, "done")
    booking.saga_step = next_step(booking, done_step)
    uow.enqueue(TASK_FOR_STEP[booking.saga_step], booking_id=booking.id)


def load_at_step(uow, booking_id: str, step: str) -> Booking | None:
    """The booking when it is pending at this step, locked for the transaction; None means there
    is nothing to do.

    Locked (PostgreSQL: FOR UPDATE; SQLite's BEGIN IMMEDIATE already serializes writers) and read
    afresh, because two copies of one step can run at once: a message redelivered while its first
    delivery is still waiting on a slow provider, or the stalled-saga beat resuming it. Without
    the lock both read `pending` and both confirm (two `booking.confirmed`, two emails); with it
    the second waits, then finds the booking moved on and does nothing."""
    booking = uow.db.execute(
        select(Booking).where(Booking.id == booking_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if booking is None or booking.status != "pending" or booking.saga_step != step:
        return None
    return booking
