"""The orphan-meeting sweep: meetings a provider keeps for our sessions that no meeting row of
ours owns are found by the sessions' tags and deleted (a beat task, tasks/maintenance.py).

How an orphan comes about: a create times out on our side but lands at the provider later, after
every look for it came back empty (the retried step's `find()`, or the rollback's in
`create_meetings`), so the step made a second meeting, or the booking was rolled back without
deleting the first. Nothing of ours refers to that meeting, so only the provider can tell.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import and_, not_, select
from sqlalchemy.orm import selectinload

from models import Booking, Meeting, SagaStep
from models.booking import TROUBLED_CONFERENCING
from services.errors import ServiceError

from .base import ConferencingProvider, MeetingRequest
from .requests import meeting_request  # the step's own request: GoTo matches its subject

log = logging.getLogger("sessionpack.conferencing.reconcile")

MAX_BOOKINGS_PER_TICK = 20
REPORT_KEYS = ("bookings", "sessions", "kept", "deleted", "delete_failed", "list_failed")


def sweep_candidates(db, now: datetime, grace: timedelta, window: timedelta,
                     limit: int = MAX_BOOKINGS_PER_TICK) -> list[str]:
    """The bookings whose sessions may have orphans now, newest first, at most `limit`.

    The criterion is the saga log's row of the conferencing step, the narrowest that is correct:
    an orphan needs a create whose answer we did not get (a timeout, a lost answer), and such a
    create fails its step. The step then either runs again (a Celery retry or a redelivered task
    counts one more in `attempts`: attempts > 1) or fails the booking there (outcome `failed`: a
    refusal, retries used up, or a rollback inside the step). A step that ran once and ended
    `done` had an answer for every create and made nothing it did not record, so those bookings,
    the common case, cost no provider call. (Meeting rows cannot tell: they keep only their
    latest status.)

    Timing, from the step's `updated_at`, stamped at each start and at its outcome, so no earlier
    than its last create: nothing is asked until `grace` after it, when every create it sent has
    landed or failed (keep grace longer than the HTTP timeout and its retries; the default, 10
    minutes, is far longer). Then the bookings are swept every tick until `window` after it, so a
    meeting that lands later still is found on a later tick. A booking still pending at the
    conferencing step (a retry waiting for its countdown) is its step's to finish, never raced.
    Newest first: with more candidates than `limit`, each one is still swept soon after its grace
    ends (older ones were swept when new).
    """
    rows = db.execute(
        select(SagaStep.booking_id)
        .join(Booking, Booking.id == SagaStep.booking_id)
        # The literal predicate of the partial index ix_saga_steps_conferencing_troubled, so
        # PostgreSQL uses the index even under a generic plan.
        .where(TROUBLED_CONFERENCING,
               SagaStep.updated_at <= now - grace, SagaStep.updated_at >= now - window,
               not_(and_(Booking.status == "pending", Booking.saga_step == "conferencing")))
        .order_by(SagaStep.updated_at.desc(), SagaStep.booking_id)
        .limit(limit))
    return [booking_id for (booking_id,) in rows]


def sweep_orphan_meetings(c, *, grace: timedelta | None = None, window: timedelta | None = None,
                          limit: int = MAX_BOOKINGS_PER_TICK) -> dict[str, int]:
    """Delete the orphan meetings of the bookings `sweep_candidates` picks.

    Each provider is asked, once for all those sessions where it can, for every meeting carrying
    one of their tags (`ConferencingProvider.tagged_meetings`). Every meeting that is not the
    external id of an active meeting row of ours (of any session, so a GoTo subject shared by
    another session never costs that session its meeting) is deleted, and the deletion recorded in
    the activity stream as `meeting.orphan_deleted`. A cancelled, failed or released session has
    no active row, so all its tagged meetings go; a row a rollback left `orphaned` becomes
    `deleted`. A meeting already gone (404) counts as deleted. A listing or a delete that fails,
    transiently or not, leaves the meeting for the next tick. Idempotent: a second run finds
    nothing to delete. The builtin provider has no remote state, so it has nothing to sweep.

    `grace` and `window` default to the MEETING_SWEEP_GRACE_SECONDS and
    MEETING_SWEEP_WINDOW_HOURS settings. Returns counts: bookings and sessions swept, meetings
    kept (ours) and deleted, deletes that failed and sessions whose provider could not list.
    """
    settings = c.settings
    grace = timedelta(seconds=settings.meeting_sweep_grace_seconds) if grace is None else grace
    window = timedelta(hours=settings.meeting_sweep_window_hours) if window is None else window
    counts: Counter = Counter()
    with c.read() as db:
        booking_ids = sweep_candidates(db, c.clock(), grace, window, limit)
        if not booking_ids:
            return dict.fromkeys(REPORT_KEYS, 0)
        by_provider: dict[str, list[tuple[str, MeetingRequest]]] = {}
        for booking in db.execute(select(Booking).options(selectinload(Booking.sessions))
                                  .where(Booking.id.in_(booking_ids))).scalars():
            name = (booking.terms or {}).get("conferencing_provider") or "none"
            by_provider.setdefault(name, []).extend((booking.id, meeting_request(booking, s)) for s in booking.sessions)
    counts["bookings"] = len(booking_ids)
    for name, items in sorted(by_provider.items()):
        provider = c.conferencing.get(name)
        if provider is None:
            log.warning("orphan sweep: provider %s is not configured; %d session(s) not swept", name, len(items))
            counts["list_failed"] += len(items)
            continue
        counts.update(_sweep_provider(c, provider, items))
    return {key: counts[key] for key in REPORT_KEYS}


def _sweep_provider(c, provider: ConferencingProvider, items: Sequence[tuple[str, MeetingRequest]]) -> Counter:
    counts = Counter(sessions=len(items))
    booking_of = {request.session_id: booking_id for booking_id, request in items}
    try:
        tagged = provider.tagged_meetings([request for _, request in items])
    except ServiceError as exc:
        log.warning("orphan sweep: %s could not list meetings (%s: %s); next tick", provider.name, exc.code, exc.message)
        counts["list_failed"] += len(items)
        return counts
    session_of = {external_id: session_id for session_id, ids in sorted(tagged.items()) if session_id in booking_of
                  for external_id in ids}
    ours = _active_external_ids(c, provider.name, set(session_of))
    for external_id, session_id in session_of.items():
        if external_id in ours:
            counts["kept"] += 1
            continue
        try:
            provider.delete(external_id)  # a 404 is success: the meeting is gone either way
        except ServiceError as exc:
            log.warning("orphan sweep: %s could not delete meeting %s of session %s (%s: %s); next tick",
                        provider.name, external_id, session_id, exc.code, exc.message)
            counts["delete_failed"] += 1
            continue
        _record_deleted(c, booking_of[session_id], session_id, provider.name, external_id)
        counts["deleted"] += 1
    return counts


def _active_external_ids(c, provider: str, external_ids: set[str]) -> set[str]:
    if not external_ids:
        return set()
    with c.read() as db:
        rows = db.execute(select(Meeting.external_id).where(
            Meeting.provider == provider, Meeting.status == "active", Meeting.external_id.in_(sorted(external_ids))))
        return {external_id for (external_id,) in rows}


def _record_deleted(c, booking_id: str, session_id: str, provider: str, external_id: str) -> None:
    log.info("orphan sweep: deleted %s meeting %s of session %s", provider, external_id, session_id)
    with c.uow() as uow:
        for row in uow.db.execute(select(Meeting).where(Meeting.provider == provider, Meeting.external_id == external_id,
                                                        Meeting.status == "orphaned")).scalars():
            row.status, row.deleted_at = "deleted", c.clock()
        uow.record("meeting.orphan_deleted", booking_id=booking_id, session_id=session_id, provider=provider,
                   meeting_id=external_id)
        uow.commit()
