"""Per-session links by purpose: an unguessable HMAC bound to one session id and one purpose.

Two kinds of token exist, both shaped `<session_id>.<signature>`:

- the **manage token** (`PUBLIC_BASE_URL/manage/<token>`): the customer's power over one session
  (cancel, reschedule) and the package's page with that session pre-selected;
- the **meeting-info token** (`PUBLIC_BASE_URL/meeting/<info-token>`): read-only, the session's
  conferencing details. Sharing it never shares the power to cancel.

The purpose is part of what is signed (HMAC-SHA256 with SECRET_KEY over `purpose || session id`),
so a token of one kind never verifies as the other, nobody can make one for another session,
and a changed character breaks it. Verify with the function of the purpose the route serves:
`verify_manage_token` or `verify_meeting_token`; each returns the session id or None.

What a genuine token may still do depends on time, and that rule lives here in one place
(`link_rights`), used by the lifecycle services (so the CLI and the web process alike):
a manage token authorises changes only until its session has ended; both kinds open their page
until `VIEW_DAYS` days after the package's last session, then they are as good as unknown.
The owner never receives either kind: owner links open the owner console (`owner_booking_url`).

Tokens are never logged; `redact` hides them in any text that may be.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

MANAGE = "manage"
MEETING_INFO = "meeting-info"
# The manage purpose keeps its original label, so links already emailed keep working.
_PURPOSES = {MANAGE: b"sessionpack/manage/v1:", MEETING_INFO: b"sessionpack/meeting-info/v1:"}
MAX_TOKEN_LENGTH = 200
# How long after a package's last session its links still open (read-only).
VIEW_DAYS = 30


def _signature(secret_key: str, purpose: str, session_id: str) -> str:
    digest = hmac.new(secret_key.encode(), _PURPOSES[purpose] + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _make(secret_key: str, purpose: str, session_id: str) -> str:
    return f"{session_id}.{_signature(secret_key, purpose, session_id)}"


def _verify(secret_key: str, purpose: str, token: object) -> str | None:
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None  # (compare_digest refuses non-ASCII text, and no genuine token has any)
    session_id, signature = token.split(".")
    if not session_id.startswith("ss_"):
        return None
    if hmac.compare_digest(signature, _signature(secret_key, purpose, session_id)):
        return session_id
    return None


def make_manage_token(secret_key: str, session_id: str) -> str:
    """The customer's manage token of one session (the last path segment of `manage_url`)."""
    return _make(secret_key, MANAGE, session_id)


def make_meeting_token(secret_key: str, session_id: str) -> str:
    """The read-only meeting-info token of one session (the last segment of `conferencing_info_url`)."""
    return _make(secret_key, MEETING_INFO, session_id)


def verify_manage_token(secret_key: str, token: object) -> str | None:
    """The session id a genuine **manage** token was made for, else None.

    None for anything forged, tampered, malformed, over MAX_TOKEN_LENGTH, not a string, or a
    genuine token of another purpose (a meeting-info token). This checks the signature only:
    whether the token may still change its session, or still open the page, is `link_rights`
    (`services.lifecycle.access.manage_link` applies both with the database).
    """
    return _verify(secret_key, MANAGE, token)


def verify_meeting_token(secret_key: str, token: object) -> str | None:
    """The session id a genuine **meeting-info** token was made for, else None.

    None for anything forged, tampered, malformed, not a string, or a genuine token of another
    purpose (a manage token never opens the meeting page under this name, and a meeting-info
    token never authorises a change). Signature only; see `link_rights` for the viewing window.
    """
    return _verify(secret_key, MEETING_INFO, token)


# The names this module had when there was one kind of token (the manage token).
make_token = make_manage_token
token_session_id = verify_manage_token


def manage_url(public_base_url: str, secret_key: str, session_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/manage/{make_manage_token(secret_key, session_id)}"


def meeting_url(public_base_url: str, secret_key: str, session_id: str) -> str:
    return f"{public_base_url.rstrip('/')}/meeting/{make_meeting_token(secret_key, session_id)}"


def owner_booking_url(public_base_url: str, booking_id: str) -> str:
    """The owner console's page of a booking (behind the owner's login; carries no token)."""
    return f"{public_base_url.rstrip('/')}/owner/bookings/{booking_id}"


@dataclass(frozen=True)
class LinkRights:
    """What a genuine token may do at one moment."""

    can_view: bool  # the page opens (read-only at least)
    can_change: bool  # a manage token still authorises cancel/reschedule of its session
    view_until: datetime  # VIEW_DAYS after the package's last session ends


def link_rights(now: datetime, session_end: datetime, package_ends: Iterable[datetime],
                purpose: str = MANAGE) -> LinkRights:
    """The one rule for how long a link works.

    A manage token authorises changes while its session has not ended (`now < session_end`;
    the cancel/reschedule policy windows may refuse earlier). Both kinds of link open their
    page until VIEW_DAYS after the end of the package's last session (`package_ends`: every
    session's end, cancelled ones included). A meeting-info token never authorises a change.
    """
    last = max([session_end, *package_ends])
    view_until = last + timedelta(days=VIEW_DAYS)
    can_view = now < view_until
    return LinkRights(can_view=can_view, can_change=purpose == MANAGE and can_view and now < session_end,
                      view_until=view_until)


_TOKEN_RE = re.compile(r"ss_[A-Za-z0-9]+\.[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """Hide anything shaped like a manage or meeting-info token."""
    return _TOKEN_RE.sub("[token]", text)
