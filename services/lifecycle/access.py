"""Who may act on which sessions: customer manage tokens or the booking page administrator.

Tokens are checked before anything is read, so a request without a genuine token learns
nothing about the sessions it names (not even whether they exist). Tokens are never logged,
stored, or repeated in an error message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from models import Booking, Session

from ..availability import to_utc_iso
from ..booking.views import how_request_ended
from ..errors import InvalidInput, NotFound, OperationFailed
from ..tokens import MANAGE, MEETING_INFO, link_rights, verify_manage_token, verify_meeting_token

MAX_SESSIONS_PER_CHANGE = 20
MAX_ID_LENGTH = 64  # booking and session ids are 27 characters; the task arguments allow 64
PAST_TENSE = {"cancel": "cancelled", "reschedule": "rescheduled"}
# What an already cancelled session cannot be, by action.
AFTER_CANCEL = {"cancel": "cancelled twice", "reschedule": "rescheduled"}


# Who acted as the administrator, as the activity stream names them: `admin` (the CLI's --admin),
# `owner:<owner id>` (the owner console), `apikey:<key name>` (an admin API key). The edge names
# it; it travels as the task's `actor` argument, bound by the admin grant like every argument.
ADMIN_ACTOR = re.compile(r"^(admin|(owner|apikey):[A-Za-z0-9_.:~@+-]{1,57})$")
MAX_ACTOR_LENGTH = 64


def admin_actor(kind: str, name: str) -> str:
    """`owner:<id>` or `apikey:<name>`; a name too long for the stream's 64 characters keeps its
    first 48 and a short hash of the whole, so two names never read the same."""
    import hashlib

    actor = f"{kind}:{name}"
    if len(actor) > MAX_ACTOR_LENGTH or not ADMIN_ACTOR.match(actor):
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        safe = re.sub(r"[^A-Za-z0-9_.:~@+-]", "_", name)[:48]
        actor = f"{kind}:{safe}~{digest}"
    return actor


def actor_of(admin: bool, actor: str | None = None) -> str:
    """The activity stream's name for who acted: the administrator's `actor` when one is named
    (see ADMIN_ACTOR), else `admin`; `customer` for the customer."""
    if not admin:
        return "customer"
    return actor if isinstance(actor, str) and ADMIN_ACTOR.match(actor) else "admin"


def by_admin(actor: str) -> bool:
    """Whether an activity actor is the administrator (any of ADMIN_ACTOR's forms)."""
    return isinstance(actor, str) and bool(ADMIN_ACTOR.match(actor))


def _check_request(session_ids: Sequence[str], tokens: Sequence[str] | None, admin: bool) -> list[str]:
    if isinstance(session_ids, str):
        session_ids = [session_ids]
    ids = list(session_ids or [])
    if not ids or not all(isinstance(s, str) and s for s in ids):
        raise InvalidInput("session_ids_required", "name at least one session id (ss_...), as shown by `sessionpack show`")
    if any(len(s) > MAX_ID_LENGTH for s in ids):
        raise InvalidInput("invalid_request", f"a session id has at most {MAX_ID_LENGTH} characters (ss_...); "
                                              "copy it from `sessionpack show`")
    if len(ids) > MAX_SESSIONS_PER_CHANGE:
        raise InvalidInput("too_many_sessions", f"at most {MAX_SESSIONS_PER_CHANGE} sessions at a time, not {len(ids)}")
    if len(set(ids)) != len(ids):
        raise InvalidInput("duplicate_session", "a session id is named twice; name each session once")
    if admin and tokens:
        raise InvalidInput("conflicting_authorization", "give either --token (customer) or --admin, not both")
    if not admin and not tokens:
        raise InvalidInput("authorization_required",
                           "give the customer's manage token of each session (--token) or act as --admin")
    return ids


def verify_tokens(secret_key: str, session_ids: Sequence[str], tokens: Sequence[str]) -> None:
    """Each token must be genuine and made for the session at the same position."""
    if isinstance(tokens, str):
        tokens = [tokens]
    if len(tokens) != len(session_ids):
        raise InvalidInput(
            "token_count_mismatch",
            f"{len(session_ids)} session(s) but {len(tokens)} token(s): give one --token per session, "
            f"in the same order as the session ids",
        )
    for session_id, token in zip(session_ids, tokens):
        if verify_manage_token(secret_key, token) != session_id:
            # Forged, tampered, or a genuine token of another session (swapped): all the same here.
            raise OperationFailed(
                "invalid_token",
                f"the token given for session {session_id} is not its manage token; use the whole last path "
                f"segment of that session's own manage_url (each session has its own)",
            )


def booking_of(db: Db, session_ids: Sequence[str]) -> str | None:
    """The booking of the first named session that exists (no authorization: for bookkeeping)."""
    ids = [session_ids] if isinstance(session_ids, str) else list(session_ids or [])
    if not ids:
        return None
    return db.execute(select(Session.booking_id).where(Session.id.in_(ids)).limit(1)).scalar_one_or_none()


def check_booking_id(booking_id: object) -> str:
    """A booking id as given by a caller, refused with `invalid_request` unless it is text of at
    most MAX_ID_LENGTH characters (an error message never quotes more)."""
    if not isinstance(booking_id, str) or not booking_id or len(booking_id) > MAX_ID_LENGTH:
        raise InvalidInput("invalid_request", f"a booking id is text of at most {MAX_ID_LENGTH} characters (bk_...); "
                                              "copy it from `sessionpack show` or the activity stream")
    return booking_id


def lock_booking(db: Db, booking_id: str) -> Booking:
    """The booking, locked for this transaction (PostgreSQL: FOR UPDATE; SQLite already holds
    its single write lock from BEGIN IMMEDIATE), with its sessions freshly read, so two changes
    of one booking decide one after the other on what the first one left."""
    check_booking_id(booking_id)
    booking = db.execute(
        select(Booking).where(Booking.id == booking_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if booking is None:
        raise NotFound("unknown_booking", f"booking {booking_id!r} does not exist; check the id (`sessionpack show`)")
    db.refresh(booking, ["sessions"])
    return booking


def load_authorized(db: Db, secret_key: str, session_ids: Sequence[str], tokens: Sequence[str] | None = None,
                    admin: bool = False, *, action: str = "cancel", now: datetime,
                    allow_request: bool = False) -> tuple[Booking, list[Session]]:
    """`authorize_sessions` inside a caller's transaction (which locks the booking first when it
    is going to change it: `changes.begin_change`). With `allow_request`, the held sessions of a
    request awaiting the owner's approval are accepted too (a withdrawal). A customer's token
    must still authorise changes at `now` (`tokens.link_rights`)."""
    ids = _check_request(session_ids, tokens, admin)
    # An id that names no session is said so first: a token cannot be checked against nothing.
    # (Session ids are random, so this tells nobody anything they could guess.)
    found = dict(db.execute(select(Session.id, Session.booking_id).where(Session.id.in_(ids))).all())
    missing = [s for s in ids if s not in found]
    if missing:
        raise NotFound("unknown_session", f"session {missing[0]!r} does not exist; check the id (`sessionpack show BOOKING_ID`)")
    if not admin:
        verify_tokens(secret_key, ids, tokens)
    booking_ids = set(found.values())
    if len(booking_ids) > 1:
        raise InvalidInput("sessions_span_bookings",
                           f"the sessions belong to {len(booking_ids)} different bookings; act on one booking at a time")
    booking_id = booking_ids.pop()
    booking = db.get(Booking, booking_id)
    by_id = {s.id: s for s in booking.sessions}
    sessions = [by_id[s] for s in ids]
    awaiting = allow_request and booking.status == "awaiting_approval"
    for s in sessions:
        if s.status == "cancelled":
            raise OperationFailed(
                "session_already_cancelled",
                f"session {s.id} (number {s.number}) is already cancelled{how_request_ended(booking)}, so it cannot be "
                f"{AFTER_CANCEL[action]}; nothing was changed and no money moved",
            )
        if s.status != "confirmed" and not (awaiting and s.status == "held"):
            raise OperationFailed("session_not_confirmed", _not_confirmed(booking, s, action))
    if not admin:
        ends = [other.end_at for other in booking.sessions]
        for s in sessions:
            if not link_rights(now, s.end_at, ends).can_change:
                raise OperationFailed(
                    "manage_link_expired",
                    f"session {s.id} (number {s.number}) ended {to_utc_iso(s.end_at)}: its manage link no longer "
                    f"changes it (it only shows the booking); ask the booking page's administrator instead",
                )
    return booking, sessions


def _not_confirmed(booking: Booking, session: Session, action: str) -> str:
    if booking.status == "awaiting_approval":
        # Only a reschedule gets here: a request is withdrawn with `cancel`, never moved.
        return (f"session {session.id} belongs to a request awaiting the owner's approval; a request cannot be "
                f"{PAST_TENSE[action]}: withdraw it with `sessionpack cancel` and request another time")
    if booking.status == "pending":
        return (f"session {session.id} is not confirmed yet (the booking is pending: its booking workflow is "
                f"still running, e.g. just after the owner approved it); try again once `sessionpack show "
                f"{booking.id}` says confirmed")
    return (f"session {session.id} is not confirmed (the booking is {booking.status}); only sessions of a "
            f"confirmed booking can be {PAST_TENSE[action]}")


def authorize_sessions(c, session_ids: Sequence[str], tokens: Sequence[str] | None = None,
                       admin: bool = False) -> tuple[Booking, list[Session]]:
    """The booking and the named sessions (in the order given) when the caller may act on them.

    All sessions must belong to one booking and be confirmed. A customer gives one manage token
    per session, in the same order; the administrator (`admin=True`) gives none. Raises
    InvalidInput (bad request, `sessions_span_bookings`), NotFound (`unknown_session`) or
    OperationFailed (`invalid_token`, `session_already_cancelled`, `session_not_confirmed`).
    """
    with c.read() as db:
        return load_authorized(db, c.settings.secret_key, session_ids, tokens, admin, now=c.clock())


@dataclass(frozen=True)
class LinkAccess:
    """What a customer's link opens at one moment (`manage_link`, `meeting_link`)."""

    session_id: str  # the session the link was made for (pre-selected on the manage page)
    booking_id: str
    can_change: bool  # a manage link that may still cancel/reschedule its session
    view_until: datetime  # the page stops opening then


def _open_link(db: Db, session_id: str | None, purpose: str, now: datetime) -> LinkAccess | None:
    if session_id is None:
        return None
    session = db.get(Session, session_id)
    if session is None:
        return None
    ends = db.execute(select(Session.end_at).where(Session.booking_id == session.booking_id)).scalars().all()
    rights = link_rights(now, session.end_at, ends, purpose)
    if not rights.can_view:
        return None
    return LinkAccess(session_id=session.id, booking_id=session.booking_id,
                      can_change=rights.can_change and session.status == "confirmed", view_until=rights.view_until)


def manage_link(db: Db, secret_key: str, token: object, now: datetime) -> LinkAccess | None:
    """What `/manage/<token>` opens: None (answer 404) for a forged or malformed token, a
    meeting-info token, an unknown session, or a package whose viewing window (30 days after its
    last session) has passed. `can_change` says whether the token still authorises cancelling or
    rescheduling its session (not once it has ended; the policies may refuse earlier, and
    `cancel_sessions`/`reschedule_session` check again under the lock)."""
    return _open_link(db, verify_manage_token(secret_key, token), MANAGE, now)


def meeting_link(db: Db, secret_key: str, token: object, now: datetime) -> LinkAccess | None:
    """What `/meeting/<info-token>` opens: None (answer 404) for a forged or malformed token, a
    manage token, an unknown session, or past the viewing window. Read-only: `can_change` is
    always False."""
    return _open_link(db, verify_meeting_token(secret_key, token), MEETING_INFO, now)
