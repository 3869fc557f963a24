"""The changes the benchmarks propose, as monkeypatches, so their effect can be measured before
anyone edits the service. Nothing imports this module unless asked:

    SESSIONPACK_BENCH_PROPOSALS=all .venv/bin/python -m bench.throughput --label proposals
    SESSIONPACK_BENCH_PROPOSALS=reminders,dispatch ...   (a comma-separated subset)

The worker gets it through bench/noop_tasks.py (loaded with `-I bench.noop_tasks`), which calls
`apply_from_env()`. Each patch is the minimal change proposed for the named file and function;
see the README's Benchmarks section for the evidence.
"""
from __future__ import annotations

import os
from datetime import timedelta

ENV = "SESSIONPACK_BENCH_PROPOSALS"


# P1 services/notifications/reminders.py plan_reminders: one SELECT for all the sessions instead of
# one per session (each SELECT also autoflushed the previous session's reminders: N SELECTs and
# N INSERTs become 1 + 1).
def plan_reminders(db, booking, sessions, *, now):
    from sqlalchemy import select

    from models import Reminder

    specs = booking.terms.get("reminders") or []
    sessions = list(sessions)
    if not specs or not sessions:
        return 0
    existing = set(db.execute(select(Reminder.session_id, Reminder.before_minutes, Reminder.recipient)
                              .where(Reminder.session_id.in_([s.id for s in sessions]))).all())
    planned = 0
    for s in sessions:
        for spec in specs:
            before = int(spec["before_minutes"])
            for recipient in ["customer"] + (["owner"] if spec.get("notify_owner") else []):
                if (s.id, before, recipient) in existing:
                    continue
                due = s.start_at - timedelta(minutes=before)
                db.add(Reminder(session_id=s.id, booking_id=booking.id, before_minutes=before, recipient=recipient,
                                due_at=due, status="scheduled" if due > now else "skipped"))
                planned += 1
    return planned


# P2 services/booking/workflow.py _mark_step: one upsert instead of Session.get (autoflush + SELECT)
# followed by an INSERT or UPDATE at the next flush.
def _mark_step(db, booking_id, step, outcome, error=None):
    from models import SagaStep, utcnow

    if db.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    started = 1 if outcome == "started" else 0
    stmt = insert(SagaStep).values(booking_id=booking_id, step=step, outcome=outcome, error=error,
                                   attempts=started, updated_at=utcnow())
    db.execute(stmt.on_conflict_do_update(
        index_elements=["booking_id", "step"],
        set_={"outcome": outcome, "error": error, "attempts": SagaStep.attempts + started, "updated_at": utcnow()}))


# P3 worker/wiring.py Container.dispatch_tasks: claim the rows of one commit in one UPDATE ...
# RETURNING (one transaction), instead of a SELECT, then one UPDATE and one COMMIT per row.
def dispatch_tasks(self, ids=None, limit=500):
    import logging

    from sqlalchemy import select, update

    from models import TaskOutbox

    if self.celery_app is None:
        return 0
    log = logging.getLogger("sessionpack.wiring")
    with self.session_factory() as db:
        pending = select(TaskOutbox.id).where(TaskOutbox.dispatched_at.is_(None))
        if ids is not None:
            pending = pending.where(TaskOutbox.id.in_(ids))
        pending = pending.order_by(TaskOutbox.id).limit(limit)
        rows = db.execute(update(TaskOutbox).where(TaskOutbox.id.in_(pending.scalar_subquery()),
                                                   TaskOutbox.dispatched_at.is_(None))
                          .values(dispatched_at=self.clock())
                          .returning(TaskOutbox.id, TaskOutbox.task_name, TaskOutbox.kwargs)).all()
        db.commit()
    sent, failed = 0, []
    for row_id, task_name, kwargs in sorted(rows):
        try:
            self.celery_app.send_task(task_name, kwargs=kwargs)
            sent += 1
        except Exception as exc:  # broker down: leave it to the sweep
            log.warning("could not enqueue %s: %s", task_name, exc)
            failed.append(row_id)
    if failed:
        with self.session_factory() as db:
            db.execute(update(TaskOutbox).where(TaskOutbox.id.in_(failed)).values(dispatched_at=None))
            db.commit()
    return sent


# P4 services/conferencing/batch.py create_meetings: no thread pool for a provider that makes no
# network call (builtin): starting the threads costs more than the work.
def _patch_create_meetings():
    from services.conferencing import batch

    original = batch.create_meetings

    def create_meetings(provider, requests, max_parallel=4):
        if getattr(provider, "name", None) == "builtin":
            return [provider.create(r) for r in requests]
        return original(provider, requests, max_parallel)

    batch.create_meetings = create_meetings


# P5 models/db.py make_engine: no pool_pre_ping (one extra round trip per checkout, ~10 per
# booking); a dropped connection already surfaces as a transient OperationalError that the tasks
# retry (tasks/base.py is_transient), and SQLAlchemy invalidates the pool on a disconnect.
def _patch_engine():
    from models import db as models_db

    original = models_db.make_engine

    def make_engine(database_url, **kwargs):
        if not database_url.startswith("sqlite"):
            kwargs.setdefault("pool_pre_ping", False)
        return original(database_url, **kwargs)

    models_db.make_engine = make_engine
    from worker import wiring

    wiring.make_engine = make_engine


# P6 services/booking/workflow.py confirm_booking: enqueue sessionpack.sync_calendar only when the
# owner has a calendar (owners.calendar); today every confirmation sends a task that loads the
# booking and owner and returns None (services/calendar/sync.py _snapshot). Measured here by
# filtering the enqueue in the unit of work.
def _patch_calendar_enqueue():
    from models import Booking, Owner
    from models.uow import UnitOfWork
    from services.calendar import SYNC_CALENDAR

    original = UnitOfWork.enqueue

    def enqueue(self, task_name, **kwargs):
        if task_name == SYNC_CALENDAR and "booking_id" in kwargs:
            booking = self.db.get(Booking, kwargs["booking_id"])
            owner = self.db.get(Owner, booking.owner_id) if booking is not None and booking.owner_id else None
            if owner is not None and not owner.calendar:
                return None
        return original(self, task_name, **kwargs)

    UnitOfWork.enqueue = enqueue


def apply(names: set[str]) -> list[str]:
    applied = []
    if names & {"all", "reminders"}:
        from services.booking import workflow
        from services.notifications import reminders

        reminders.plan_reminders = plan_reminders
        workflow.plan_reminders = plan_reminders
        applied.append("reminders")
    if names & {"all", "mark_step"}:
        from services.booking import workflow

        workflow._mark_step = _mark_step
        applied.append("mark_step")
    if names & {"all", "dispatch"}:
        from worker.wiring import Container

        Container.dispatch_tasks = dispatch_tasks
        applied.append("dispatch")
    if names & {"all", "meetings"}:
        _patch_create_meetings()
        applied.append("meetings")
    if names & {"all", "preping"}:
        _patch_engine()
        applied.append("preping")
    if names & {"all", "calendar"}:
        _patch_calendar_enqueue()
        applied.append("calendar")
    return applied


def apply_from_env() -> list[str]:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return []
    return apply({v.strip() for v in value.split(",") if v.strip()})
