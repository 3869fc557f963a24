"""Claim due outbox rows a chunk at a time and send each one (the email outbox and webhook deliveries).

A row is due when it is `pending` and its `next_attempt_at` has come, or when it has been
`sending` for longer than `stale_after` (a dispatcher died holding it). One conditional UPDATE
claims a chunk (pending -> sending, attempts + 1); a row another dispatcher claimed meanwhile no
longer matches `due`, so no row is sent by two dispatchers at once. The chunk is sent right away,
so a claimed row waits no longer than its chunk takes to send: never anywhere near `stale_after`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import or_, select, update


def claim_and_send(container, model, send: Callable[[object, datetime], None], *, ids: list[int] | None,
                   limit: int, chunk_size: int, stale_after: timedelta) -> None:
    """Claim due rows of `model` (only `ids` when given), at most `limit` in all, `chunk_size` at a
    time, and call `send(row, now)` on each claimed row in id order; `send` records the outcome on
    the row and each outcome is committed on its own, so a crash later in the chunk resends
    nothing sent before it."""
    claimed_so_far = 0
    with container.session_factory() as db:
        while claimed_so_far < limit:
            now = container.clock()
            due = or_(
                (model.status == "pending") & (model.next_attempt_at <= now),
                (model.status == "sending") & (model.next_attempt_at <= now - stale_after),
            )
            candidates = select(model.id).where(due)
            if ids is not None:
                candidates = candidates.where(model.id.in_(ids))
            chunk = min(chunk_size, limit - claimed_so_far)
            candidates = candidates.order_by(model.id).limit(chunk).scalar_subquery()
            claimed = db.execute(
                update(model).where(model.id.in_(candidates), due)
                .values(status="sending", next_attempt_at=now, attempts=model.attempts + 1)
                .returning(model.id)
            ).scalars().all()
            db.commit()
            if not claimed:
                break
            claimed_so_far += len(claimed)
            rows = db.execute(select(model).where(model.id.in_(claimed)).order_by(model.id)).scalars().all()
            for row in rows:
                send(row, now)
                db.commit()
            if len(claimed) < chunk:
                break  # that was all that was due
