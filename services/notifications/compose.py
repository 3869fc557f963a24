"""Composing notification emails: a booking view in, ready-to-send message specs out.

Pure: no database, no network, no clock in anything that identifies a message. Each function
returns a list of `EmailMessageSpec` (one per recipient) whose `message_id` is deterministic —
the same email composed twice gets the same id, two different emails never share one — so the
outbox can store and deduplicate them. `change_key` is whatever identifies the change event
(an activity id, a request id): two cancellations of the same booking get different ids.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Iterable

from email_validator import EmailNotValidError, validate_email

from services.errors import InvalidInput

from .ics import cancel_calendar, publish_calendar, reschedule_calendar
from .render import one_line, render_email
from .views import BookingView, SessionView

AUDIENCES = ("customer", "owner")


@dataclass
class EmailMessageSpec:
    """One email to one recipient, everything decided: the sender only has to deliver it.

    `attachments` are dicts `{filename, content_type, content}` with text content (the .ics
    files); `reply_to` lets a customer's reply reach the owner and the owner's the customer.
    """

    kind: str
    to_addr: str
    to_name: str
    subject: str
    text: str
    html: str
    attachments: list[dict] = field(default_factory=list)
    message_id: str = ""
    session_id: str | None = None
    reply_to: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready, for storing in an outbox row."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EmailMessageSpec":
        return cls(**data)


# -- addresses and identities --------------------------------------------------------------------
def valid_address(address: str, who: str) -> str:
    """The normalized address, or InvalidInput('invalid_email') naming whose address is wrong."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except (EmailNotValidError, TypeError) as exc:
        raise InvalidInput(
            "invalid_email",
            f"the {who} email address {address!r} is not valid ({exc}); correct it and try again",
        ) from None


def _id_part(value: object) -> str:
    """A Message-ID-safe token. Anything that had to be altered gets a hash suffix, so two
    different keys can never collapse into the same id."""
    text = str(value)
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", text)
    if safe == text and len(text) <= 64:
        return text
    return f"{safe[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def message_id(kind: str, booking_id: str, *discriminator: object) -> str:
    """'<booking_confirmed_customer.bk_1.confirmed@sessionpack>': one id per distinct email."""
    parts = ".".join(_id_part(p) for p in (kind, booking_id, *discriminator))
    return f"<{parts}@sessionpack>"


@dataclass(frozen=True)
class _Recipient:
    audience: str
    addr: str
    name: str
    tz: str
    reply_to: str


def _recipient(view: BookingView, audience: str) -> _Recipient:
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}, not {audience!r}")
    if audience == "owner":
        return _Recipient("owner", view.owner_email, view.owner_name, view.owner_timezone, view.customer_email)
    return _Recipient("customer", view.customer_email, view.customer_name, view.customer_timezone, view.owner_email)


def _clean(view: BookingView) -> BookingView:
    """The view with validated, normalized addresses and single-line names and titles, so that a
    CR/LF typed into a form can neither reach a header (mail or calendar) nor fake extra lines
    in a text body."""
    return replace(view, customer_email=valid_address(view.customer_email, "customer"),
                   owner_email=valid_address(view.owner_email, "owner"),
                   customer_name=one_line(view.customer_name), owner_name=one_line(view.owner_name),
                   event_name=one_line(view.event_name), page_name=one_line(view.page_name))


def _ics(filename: str, method: str, content: str) -> dict:
    return {"filename": filename, "content_type": f"text/calendar; method={method}; charset=utf-8",
            "content": content}


def _compose(kind: str, view: BookingView, audience: str, discriminator: tuple, *,
             sessions: list[SessionView], attachments: Iterable[dict] = (),
             session_id: str | None = None, **extra) -> EmailMessageSpec:
    """Render `templates/email/<kind>/` for one recipient and wrap it in a spec."""
    r = _recipient(view, audience)
    context = {"booking": view, "audience": audience, "tz": r.tz, "recipient_name": r.name,
               "sessions": sessions, **extra}
    rendered = render_email(kind, context)
    return EmailMessageSpec(
        kind=kind, to_addr=r.addr, to_name=r.name, subject=rendered.subject, text=rendered.text,
        html=rendered.html, attachments=list(attachments),
        message_id=message_id(kind, view.id, *discriminator), session_id=session_id, reply_to=r.reply_to,
    )


def _session(view: BookingView, session_id: str) -> SessionView:
    for s in view.sessions:
        if s.id == session_id:
            return s
    raise ValueError(f"session {session_id} is not part of booking {view.id}")


def _reason(text: str | None) -> str | None:
    """Reasons and failure messages as one line, or None when there is nothing to say."""
    return one_line(text or "") or None


def _confirmed(view: BookingView) -> list[SessionView]:
    return [s for s in view.sessions if s.status == "confirmed"]


# -- the emails ----------------------------------------------------------------------------------
def booking_confirmed(view: BookingView, *, now: datetime | None = None) -> list[EmailMessageSpec]:
    """The consolidated confirmation, customer then owner, each with its own .ics of all sessions.

    `now` (the container's clock) is the calendar files' DTSTAMP; it never enters the message id."""
    view = _clean(view)
    return [
        _compose(f"booking_confirmed_{a}", view, a, ("confirmed",), sessions=_confirmed(view),
                 attachments=[_ics("sessions.ics", "PUBLISH", publish_calendar(view, a, now=now))])
        for a in AUDIENCES
    ]


# Why a booking failed, in the customer's words, by the failure's code (then its step); the
# failure's own message is written for the operator (codes, commands) and stays in `show`.
FAILURE_REASONS = {
    "slot_unavailable": "one of the times you chose was taken by another booking just before yours",
    "limit_reached": "the day or week you chose is already fully booked",
    "slot_in_past": "one of the times you chose has already passed",
    "slot_too_soon": "one of the times you chose is too soon to be booked",
    "slot_outside_availability": "one of the times you chose is not offered",
    "slot_off_grid": "one of the times you chose is not offered",
    "payment_unavailable": "payments cannot be taken at the moment",
}
FAILURE_REASONS_BY_STEP = {
    "authorize": "your card was declined or could not be used for this payment",
    "capture": "the payment could not be completed",
    "conferencing": "we could not set up the online meetings for your sessions (the video-conferencing service "
                    "was unavailable)",
    "validate": "the request could not be accepted as it was sent",
}


def failure_reason(failure: dict | None) -> str:
    """One line for the customer on why their booking did not happen."""
    failure = failure or {}
    code, step = failure.get("code") or "", failure.get("step") or ""
    if code in FAILURE_REASONS:
        return FAILURE_REASONS[code]
    if step in FAILURE_REASONS_BY_STEP:
        return FAILURE_REASONS_BY_STEP[step]
    return "a service we rely on was unavailable"


def booking_failed(view: BookingView) -> list[EmailMessageSpec]:
    """Tells the customer the booking did not happen, why (`failure_reason`) and that nothing was
    charged: whatever the step, from a request refused at its hold to a rolled-back saga."""
    view = _clean(view)
    return [_compose("booking_failed_customer", view, "customer", ("failed",), sessions=list(view.sessions),
                     failure_message=_reason(failure_reason(view.failure)))]


def sessions_cancelled(view: BookingView, cancelled_session_ids: list[str], refund_cents: int,
                       change_key: str, *, reason: str | None = None,
                       now: datetime | None = None) -> list[EmailMessageSpec]:
    """One notice for the sessions cancelled together, customer then owner, with a CANCEL .ics.

    The view is taken after the change: the sessions' SEQUENCE already raised. `now` is the
    calendar file's DTSTAMP.
    """
    view = _clean(view)
    ids = list(cancelled_session_ids)
    cancelled = [_session(view, sid) for sid in ids]
    remaining = sum(1 for s in _confirmed(view) if s.id not in ids)
    single = ids[0] if len(ids) == 1 else None
    return [
        _compose(f"sessions_cancelled_{a}", view, a, (change_key,), sessions=cancelled, session_id=single,
                 attachments=[_ics("cancel.ics", "CANCEL", cancel_calendar(view, ids, a, now=now))],
                 refund_cents=refund_cents, remaining=remaining, reason=_reason(reason))
        for a in AUDIENCES
    ]


def session_rescheduled(view: BookingView, session_id: str, old_start: datetime, old_end: datetime,
                        fee_cents: int, change_key: str, *, now: datetime | None = None) -> list[EmailMessageSpec]:
    """Old time -> new time and the fee, customer then owner, with the moved event's .ics
    (`now` is its DTSTAMP)."""
    view = _clean(view)
    session = _session(view, session_id)
    return [
        _compose(f"session_rescheduled_{a}", view, a, (session_id, change_key), sessions=[session],
                 session_id=session_id,
                 attachments=[_ics("session.ics", "PUBLISH", reschedule_calendar(view, session_id, a, now=now))],
                 session=session, old_start=old_start, old_end=old_end, fee_cents=fee_cents)
        for a in AUDIENCES
    ]


def reschedule_failed(view: BookingView, session_id: str, fee_refund_cents: int,
                      change_key: str, *, why: str | None = None) -> list[EmailMessageSpec]:
    """A reschedule that could not be completed: the session keeps its time, and the fee (when
    one was charged) is refunded. Customer only: the owner never heard of the request. `why`
    is one line for the customer (by default: a service we rely on stayed unavailable)."""
    view = _clean(view)
    session = _session(view, session_id)
    return [_compose("reschedule_failed_customer", view, "customer", (session_id, change_key), sessions=[session],
                     session_id=session_id, session=session, fee_cents=fee_refund_cents, why=_reason(why))]


def refund_issued(view: BookingView, amount_cents: int, change_key: str, *,
                  reason: str | None = None) -> list[EmailMessageSpec]:
    """A refund reached the customer's card (manual refunds; cancellations say it themselves)."""
    view = _clean(view)
    return [_compose("refund_issued_customer", view, "customer", (change_key,), sessions=[],
                     amount_cents=amount_cents, reason=_reason(reason))]


def reminder(view: BookingView, session_id: str, recipient: str, before_minutes: int) -> list[EmailMessageSpec]:
    """One session's reminder with its full details, as if it had been booked alone.

    The id carries the session's SEQUENCE, so the reminder for a rescheduled session's new time
    is a new email and not a duplicate of the one planned for the old time.
    """
    view = _clean(view)
    session = _session(view, session_id)
    # Policies are worded from this session's own cost, not the package's range of costs.
    alone = replace(view, sessions=[session])
    return [_compose(f"reminder_{recipient}", alone, recipient,
                     (session_id, f"s{session.sequence}", f"{before_minutes}m"),
                     sessions=[session], session_id=session_id, session=session,
                     before_minutes=before_minutes)]


def approval_requested(view: BookingView) -> list[EmailMessageSpec]:
    """Manual booking mode: 'awaiting approval' to the customer, 'please decide' to the owner."""
    view = _clean(view)
    return [_compose(f"approval_requested_{a}", view, a, ("requested",), sessions=list(view.sessions))
            for a in AUDIENCES]


def booking_declined(view: BookingView, reason: str | None, *, expired: bool = False) -> list[EmailMessageSpec]:
    """The owner declined a manual-mode request, or it expired undecided: the customer hears that
    nothing was booked or charged; on expiry the owner hears it too."""
    view = _clean(view)
    specs = [_compose("booking_declined_customer", view, "customer", ("declined",),
                      sessions=list(view.sessions), reason=_reason(reason))]
    if expired:
        specs.append(_compose("approval_expired_owner", view, "owner", ("expired",), sessions=list(view.sessions)))
    return specs


def request_withdrawn(view: BookingView, reason: str | None, *, by_admin: bool = False) -> list[EmailMessageSpec]:
    """A request awaiting approval was withdrawn (by the customer, or the administrator for them):
    the customer gets a confirmation, the owner learns there is nothing left to decide. One
    withdrawal per booking, so the ids carry no change key."""
    view = _clean(view)
    return [_compose(f"request_withdrawn_{a}", view, a, ("withdrawn",), sessions=list(view.sessions),
                     reason=_reason(reason), by_admin=by_admin)
            for a in AUDIENCES]


def payment_alert(view: BookingView, what: str, ref: str, *, title: str, text: str) -> list[EmailMessageSpec]:
    """Stripe told us something about a booking's money the owner must act on (a refund that
    failed, a dispute): one email to the owner, once per Stripe object."""
    view = _clean(view)
    return [_compose("payment_alert_owner", view, "owner", (what, ref), sessions=[], title=title, text=text)]
