"""The email outbox: rows written in the deciding transaction, delivered after commit, once.

Delivery claims a row (pending -> sending) with a conditional UPDATE before sending, so two
dispatchers or a redelivered task never send one row twice; a row left in `sending` by a
worker that died is retried by the sweep after `stale_after`.
"""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import or_, select, update

from models import OutboxEmail

from ..errors import InvalidInput, PermanentError
from ..outbox_claim import claim_and_send

log = logging.getLogger("sessionpack.outbox")
SEND_TASK = "sessionpack.send_emails"
MAX_ATTEMPTS = 8
DELIVERY_CHUNK = 20


def queue_emails(uow, specs: Iterable, booking_id: str | None = None) -> list[int]:
    """Write each composed email as an outbox row (skipping message ids already there) and ask
    for delivery after commit. Returns the new row ids."""
    return queue_email_batch(uow, [(booking_id, spec) for spec in specs])


def queue_email_batch(uow, items: Iterable[tuple[str | None, object]]) -> list[int]:
    """`queue_emails` for (booking id, spec) pairs of any number of bookings: one query finds the
    message ids already queued, one flush writes the rest, and one task delivers them all."""
    db, items = uow.db, list(items)
    if not items:
        return []
    wanted = [spec.message_id for _, spec in items]
    seen = set(db.execute(select(OutboxEmail.message_id).where(OutboxEmail.message_id.in_(wanted))).scalars())
    rows = []
    for booking_id, spec in items:
        if spec.message_id in seen:
            continue
        seen.add(spec.message_id)
        row = OutboxEmail(
            message_id=spec.message_id, kind=spec.kind, booking_id=booking_id,
            session_id=spec.session_id, to_addr=spec.to_addr, to_name=spec.to_name or "", reply_to=spec.reply_to,
            subject=spec.subject, text_body=spec.text, html_body=spec.html,
            attachments=list(spec.attachments or []),
        )
        db.add(row)
        rows.append(row)
    if not rows:
        return []
    db.flush()
    ids = [r.id for r in rows]
    # Delivery tasks of at most DELIVERY_CHUNK emails: a reminder tick's hundreds of emails are
    # sent by several worker processes at once, and a slow SMTP server holds up only its chunk.
    # `booking_ids` is only for the eye (Flower's task list shows each task's booking).
    for start in range(0, len(ids), DELIVERY_CHUNK):
        chunk = rows[start:start + DELIVERY_CHUNK]
        uow.enqueue(SEND_TASK, ids=[r.id for r in chunk],
                    booking_ids=sorted({r.booking_id for r in chunk if r.booking_id}) or None)
    return ids


def _spec_of(row: OutboxEmail):
    from .compose import EmailMessageSpec

    return EmailMessageSpec(kind=row.kind, to_addr=row.to_addr, to_name=row.to_name, subject=row.subject,
                            text=row.text_body, html=row.html_body, attachments=row.attachments or [],
                            message_id=row.message_id, session_id=row.session_id, reply_to=row.reply_to)


def deliver(container, ids: list[int] | None = None, *, limit: int = 200,
            stale_after: timedelta = timedelta(minutes=10)) -> dict[str, int]:
    """Send pending rows (the given ids, or every due one). Returns counts by outcome.

    Transient failures put the row back with exponential backoff; a permanent refusal or
    too many attempts marks it failed (visible in `doctor`)."""
    counts = {"sent": 0, "retry": 0, "failed": 0}
    # Claimed a chunk at a time and sent right away (see services/outbox_claim.py).
    claim_and_send(container, OutboxEmail, lambda row, now: _send_one(container, row, now, counts),
                   ids=ids, limit=limit, chunk_size=DELIVERY_CHUNK, stale_after=stale_after)
    return counts


def _send_one(container, row: OutboxEmail, now: datetime, counts: dict[str, int]) -> None:
    """Send one claimed row and record the outcome on it (the caller commits)."""
    try:
        container.email_sender.send(_spec_of(row), container.settings.smtp_from)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        # A refused recipient or an invalid address will not get better by retrying.
        permanent = isinstance(exc, (PermanentError, InvalidInput)) or row.attempts >= MAX_ATTEMPTS
        row.status = "failed" if permanent else "pending"
        row.last_error = str(exc)[:2000]
        backoff = min(3600, 5 * 2 ** row.attempts) * (0.5 + random.random())
        row.next_attempt_at = now + timedelta(seconds=backoff)
        counts["failed" if permanent else "retry"] += 1
        log.warning("email %s not sent (attempt %s): %s", row.kind, row.attempts, exc)
    else:
        row.status, row.sent_at, row.last_error = "sent", container.clock(), None
        counts["sent"] += 1


def backlog(db, now: datetime) -> dict[str, int]:
    """For `doctor`: pending rows, rows overdue by more than five minutes, failed rows."""
    pending = db.query(OutboxEmail).filter(OutboxEmail.status.in_(("pending", "sending"))).count()
    overdue = db.query(OutboxEmail).filter(
        OutboxEmail.status.in_(("pending", "sending")), OutboxEmail.created_at < now - timedelta(minutes=5)
    ).count()
    failed = db.query(OutboxEmail).filter(OutboxEmail.status == "failed").count()
    return {"pending": pending, "overdue": overdue, "failed": failed}


# The retention sweep empties this many emails per transaction, and at most PURGE_LIMIT a tick.
PURGE_CHUNK = 500
PURGE_LIMIT = 20_000
PURGED_BODY = ""


def _purgeable(cutoff: datetime):
    """Delivered (or given up) before `cutoff` and still holding a body. The sent ones are read
    through the partial index ix_outbox_emails_unpurged; given-up ones are few."""
    return or_(
        (OutboxEmail.status == "sent") & OutboxEmail.body_purged_at.is_(None) & (OutboxEmail.sent_at < cutoff),
        (OutboxEmail.status == "failed") & OutboxEmail.body_purged_at.is_(None) & (OutboxEmail.created_at < cutoff),
    )


def purge_bodies(container, *, limit: int = PURGE_LIMIT) -> dict[str, int]:
    """The beat sweep: empty the bodies and attachments of emails delivered (or given up) more
    than EMAIL_BODY_RETENTION_DAYS ago. They carry manage links, meeting passcodes and host
    links; the metadata (kind, recipient, subject, status, times, message id) stays, so the
    outbox still says what was sent to whom and when. Returns {"purged": n}."""
    now = container.clock()
    cutoff = now - timedelta(days=container.settings.email_body_retention_days)
    purged = 0
    while purged < limit:
        with container.session_factory() as db:
            ids = db.execute(select(OutboxEmail.id).where(_purgeable(cutoff)).order_by(OutboxEmail.id)
                             .limit(min(PURGE_CHUNK, limit - purged))).scalars().all()
            if not ids:
                break
            db.execute(update(OutboxEmail).where(OutboxEmail.id.in_(ids), _purgeable(cutoff)).values(
                text_body=PURGED_BODY, html_body=PURGED_BODY, attachments=[], body_purged_at=now))
            db.commit()
        purged += len(ids)
    if purged:
        log.info("emptied the bodies of %d email(s) older than %g days", purged,
                 container.settings.email_body_retention_days)
    return {"purged": purged}


def retention(db, now: datetime, days: float) -> dict[str, int]:
    """For `doctor`: emails whose bodies are past retention by more than a day (the sweep is
    behind or not running) and how many were emptied so far."""
    overdue = db.query(OutboxEmail).filter(_purgeable(now - timedelta(days=days + 1))).count()
    purged = db.query(OutboxEmail).filter(OutboxEmail.body_purged_at.is_not(None)).count()
    return {"overdue": overdue, "purged": purged}
