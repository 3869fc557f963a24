"""Rendering emails from Jinja2 templates, and the wording shared by emails and calendar files.

Templates live in `templates/email/<name>/{subject.txt, body.txt, body.html}` and only ever see
plain views (`services.notifications.views`). HTML is autoescaped, text is not; a missing
variable is an error (StrictUndefined), never a silently empty string in a customer's inbox.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.money import allocate, display_amount, percent_of
from core.paths import TEMPLATES_DIR

from .views import BookingView, MeetingView, SessionView

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PROVIDER_NAMES = {"zoom": "Zoom", "gotomeeting": "GoToMeeting", "webex": "Webex", "jitsi": "Jitsi Meet",
                  "builtin": "Video call"}

# C0/C1 controls and the Unicode line/paragraph separators: anything a mail client or a header
# parser could take as a line break.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Detail:
    """One line of a session's details. `key` is stable for templates to style by (join, host,
    info, manage, ...); `label` is what people read; links have `is_link`."""

    key: str
    label: str
    value: str
    is_link: bool = False


def one_line(value: object) -> str:
    """Collapse CR/LF and other control characters to single spaces and trim (subjects, names)."""
    return re.sub(r" {2,}", " ", _CONTROL.sub(" ", str(value))).strip()


# -- time ----------------------------------------------------------------------------------------
def _local(moment: datetime, tz: str) -> datetime:
    # zoneinfo, not fixed offsets: a package spanning a DST change shows each session at its
    # own wall-clock time.
    return moment.astimezone(ZoneInfo(tz))


def _day(local: datetime) -> str:
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"


def local_datetime(moment: datetime, tz: str) -> str:
    """'Mon 7 Dec 2026, 09:00 (America/New_York)' — English names, independent of the locale."""
    local = _local(moment, tz)
    return f"{_day(local)}, {local:%H:%M} ({tz})"


def local_range(start: datetime, end: datetime, tz: str) -> str:
    """'Mon 7 Dec 2026, 09:00–10:00 (America/New_York)'; the end carries its day when it differs."""
    a, b = _local(start, tz), _local(end, tz)
    end_text = f"{b:%H:%M}" if a.date() == b.date() else f"{_day(b)}, {b:%H:%M}"
    return f"{_day(a)}, {a:%H:%M}\u2013{end_text} ({tz})"


def session_time(session: SessionView, tz: str) -> str:
    return local_range(session.start, session.end, tz)


# -- money and policies ----------------------------------------------------------------------------
def money(cents: int, currency: str) -> str:
    return display_amount(cents, currency)


def _amounts(cents: list[int], currency: str) -> str:
    """Distinct amounts, largest first: '$16.67 or $16.66' when a price does not split evenly."""
    return " or ".join(money(c, currency) for c in sorted(set(cents), reverse=True))


def _number(value: float) -> str:
    return format(Decimal(str(value)).normalize(), "f")


def _notice(hours: float) -> str:
    if hours >= 1 and float(hours).is_integer():
        return f"{int(hours)} hour" + ("" if hours == 1 else "s")
    minutes = round(hours * 60)
    return f"{minutes} minute" + ("" if minutes == 1 else "s")


def _relative_costs(view: BookingView) -> list[int]:
    costs = [s.relative_cost_cents for s in view.sessions]
    return costs or allocate(view.price_cents, max(1, view.sessions_per_booking))


def policy_lines(view: BookingView) -> list[str]:
    """The cancel and reschedule policies in plain words, one sentence each.

    'Cancel up to 24 hours before a session for a 50 % refund of $50.00 per session' — the
    amount is the session's relative cost; free bookings get no money wording at all.
    """
    p, paid = view.policies, view.price_cents > 0
    costs = _relative_costs(view)
    if not p.cancel_allowed:
        cancel = "Cancellation is not available"
    else:
        cancel = ("Cancel any time before a session" if p.cancel_min_notice_hours <= 0
                  else f"Cancel up to {_notice(p.cancel_min_notice_hours)} before a session")
        if paid and p.refund_percent >= 100:
            cancel += f" for a full refund of {_amounts(costs, view.currency)} per session"
        elif paid and p.refund_percent > 0:
            cancel += (f" for a {_number(p.refund_percent)} % refund of "
                       f"{_amounts(costs, view.currency)} per session")
        elif paid:
            cancel += "; no refund is given"
    if not p.reschedule_allowed:
        reschedule = "Rescheduling is not available"
    else:
        reschedule = ("Reschedule any time before" if p.reschedule_min_notice_hours <= 0
                      else f"Reschedule up to {_notice(p.reschedule_min_notice_hours)} before")
        fees = [percent_of(c, p.fee_percent) for c in costs]
        if paid and any(fees):
            reschedule += f" for a fee of {_amounts(fees, view.currency)}"
        elif paid:
            reschedule += " a session at no charge"
        else:
            reschedule += " a session"
    return [cancel, reschedule]


# -- conferencing details ------------------------------------------------------------------------
def provider_name(meeting: MeetingView | None) -> str:
    if meeting is None or meeting.provider == "none":
        return "No online meeting"
    return PROVIDER_NAMES.get(meeting.provider, meeting.provider.title())


ROOM_LINK_PROVIDERS = frozenset({"builtin", "jitsi"})


def session_details(session: SessionView, audience: str = "customer") -> list[Detail]:
    """Everything a person needs for one session, in display order.

    The host link is the owner's start link: only the owner's copy ever carries it. The
    customer's links (meeting page, cancel/reschedule) carry the customer's tokens: only the
    customer's copy has them; the owner's copy links to the booking in the owner console.
    """
    m = session.meeting
    rows: list[Detail] = []
    if m is not None and m.provider != "none":
        rows.append(Detail("provider", "Conferencing", provider_name(m)))
        if m.join_url:
            rows.append(Detail("join", "Join", m.join_url, True))
        # A builtin or Jitsi room's id is only the room in its join link, nothing a person would
        # read out or dial: the link says it all. Zoom's, Webex's and GoTo's ids are dialled.
        if m.meeting_id and not (m.provider in ROOM_LINK_PROVIDERS and m.meeting_id in (m.join_url or "")):
            rows.append(Detail("meeting_id", "Meeting ID", m.meeting_id))
        if m.password:
            rows.append(Detail("password", "Password", m.password))
        if m.dial_in:
            rows.append(Detail("dial_in", "Dial-in", m.dial_in))
        if audience == "owner" and m.host_url:
            rows.append(Detail("host", "Host link", m.host_url, True))
    if audience == "owner":
        if session.owner_url:
            rows.append(Detail("console", "Booking in your console", session.owner_url, True))
        return rows
    rows.append(Detail("info", "Conferencing info", session.conferencing_info_url, True))
    rows.append(Detail("manage", "Cancel or reschedule", session.manage_url, True))
    return rows


def without_count(name: str, sessions: int) -> str:
    """An event type's name without a trailing mention of its number of sessions ("Coaching
    package, 3 sessions" -> "Coaching package"), for lines that state the number themselves."""
    pattern = rf"\s*(?:[,:;\-\u2013\u2014]\s*|\(\s*){int(sessions)}\s+sessions?\s*\)?\s*$"
    bare = re.sub(pattern, "", name or "", flags=re.IGNORECASE)
    return bare or name


def safe_url(url: str) -> str:
    """Only web, mail and phone links become clickable; anything else (javascript:) is dropped."""
    return url if re.match(r"(?i)^(https?:|mailto:|tel:)", url or "") else "#"


# -- the environment -----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared Jinja2 environment (built once; templates are cached by Jinja)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR / "email")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() of each file on every render
    )
    env.filters.update(
        local_datetime=local_datetime, local_range=local_range, session_time=session_time,
        money=money, safe_url=safe_url, one_line=one_line, without_count=without_count,
    )
    env.globals.update(policy_lines=policy_lines, session_details=session_details, provider_name=provider_name)
    return env


def render_email(name: str, context: dict) -> RenderedEmail:
    """Render `templates/email/<name>/` into a subject (one clean line), a text and an HTML body."""
    env = environment()
    subject = one_line(env.get_template(f"{name}/subject.txt").render(context))
    text = env.get_template(f"{name}/body.txt").render(context)
    html = env.get_template(f"{name}/body.html").render(context)
    # Blank-line runs come from skipped optional blocks; squeeze them so the text reads evenly.
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return RenderedEmail(subject=subject, text=text, html=html)
