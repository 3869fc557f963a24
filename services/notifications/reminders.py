"""Per-session reminders from a database schedule, sent by a beat tick.

Planning writes one row per session, offset and recipient. The tick claims due rows in
batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's BEGIN IMMEDIATE write lock gives
the same exclusivity), so any number of beats or workers never send one twice, and its cost
follows what is due, not what is stored (index on status, due_at).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import select, update

from models import Booking, Reminder, Session

# A reminder delayed by an outage is still worth sending while the session has not started.


def plan_reminders(db, booking: Booking, sessions: Iterable[Session], *, now: datetime) -> int:
    """Schedule the booking's reminders for these sessions. A reminder whose time has already
    passed is recorded as skipped (no "24 hours before" email a minute after booking)."""
    specs = booking.terms.get("reminders") or []
    sessions = list(sessions)
    if not specs or not sessions:
        return 0
    # One query for all sessions (a query per session would also flush the rows added so far).
    existing = set(db.execute(select(Reminder.session_id, Reminder.before_minutes, Reminder.recipient)
                              .where(Reminder.session_id.in_([s.id for s in sessions]))).all())
    planned = 0
    for s in sessions:
        for spec in specs:
            before = int(spec["before_minutes"])
            recipients = ["customer"] + (["owner"] if spec.get("notify_owner") else [])
            for recipient in recipients:
                if (s.id, before, recipient) in existing:
                    continue
                due = s.start_at - timedelta(minutes=before)
                db.add(Reminder(session_id=s.id, booking_id=booking.id, before_minutes=before, recipient=recipient,
                                due_at=due, status="scheduled" if due > now else "skipped"))
                planned += 1
    return planned


def drop_reminders(db, session_ids: list[str]) -> int:
    """Cancelled sessions: their scheduled reminders are dropped."""
    return db.execute(
        update(Reminder).where(Reminder.session_id.in_(session_ids), Reminder.status == "scheduled")
        .values(status="dropped")
    ).rowcount


def replan_reminders(db, booking: Booking, session: Session, *, now: datetime) -> None:
    """A rescheduled session: every reminder moves with it (and may become due again)."""
    for r in db.execute(select(Reminder).where(Reminder.session_id == session.id)).scalars():
        r.due_at = session.start_at - timedelta(minutes=r.before_minutes)
        r.status = "scheduled" if r.due_at > now else "skipped"
        r.sent_at = None


def claim_due(db, now: datetime, batch: int) -> list[Reminder]:
    """Lock up to `batch` due reminders for this transaction; others skip them."""
    query = (select(Reminder).where(Reminder.status == "scheduled", Reminder.due_at <= now)
             .order_by(Reminder.due_at).limit(batch))
    if db.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(db.execute(query).scalars())


def send_due(container, *, now: datetime | None = None, batch: int = 200, max_batches: int = 50) -> dict[str, int]:
    """One tick: turn due reminders into outbox emails. Returns counts by outcome.

    Per batch, a fixed number of queries whatever its size: the claim, the batch's sessions, one
    view per booking, one outbox write and one delivery task for all its emails."""
    from . import compose
    from .booking_view import booking_view
    from .outbox import queue_email_batch

    now = now or container.clock()
    counts = {"sent": 0, "dropped": 0, "skipped": 0}
    for _ in range(max_batches):
        with container.uow() as uow:
            due = claim_due(uow.db, now, batch)
            if not due:
                break
            sessions = {s.id: s for s in uow.db.execute(
                select(Session).where(Session.id.in_({r.session_id for r in due}))).scalars()}
            views, emails = {}, []
            for r in due:
                session = sessions[r.session_id]
                if session.status != "confirmed":
                    r.status = "dropped"
                    counts["dropped"] += 1
                    continue
                if session.start_at <= now:  # too late to remind
                    r.status = "skipped"
                    counts["skipped"] += 1
                    continue
                if r.booking_id not in views:
                    views[r.booking_id] = booking_view(uow.db, uow.db.get(Booking, r.booking_id), container.settings)
                specs = compose.reminder(views[r.booking_id], r.session_id, r.recipient, r.before_minutes)
                emails += [(r.booking_id, spec) for spec in specs]
                r.status, r.sent_at = "sent", now
                counts["sent"] += 1
                uow.record("reminder.sent", booking_id=r.booking_id, session_id=r.session_id,
                           before_minutes=r.before_minutes, recipient=r.recipient)
            queue_email_batch(uow, emails)
            uow.commit()
        if len(due) < batch:
            break
    return counts


def overdue_count(db, now: datetime, grace: timedelta = timedelta(minutes=5)) -> int:
    """For `doctor`: reminders due for longer than `grace` and still not sent."""
    return db.query(Reminder).filter(Reminder.status == "scheduled", Reminder.due_at < now - grace).count()
