"""Customer links by purpose and by time, on both databases: the manage token changes its session
until the session has ended, both kinds of link open their page until 30 days after the package's
last session, and a meeting-info token never authorises a change (services.tokens.link_rights,
applied by services.lifecycle.access for the CLI and the web process alike)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services import lifecycle
from services.lifecycle.access import manage_link, meeting_link
from services.tokens import VIEW_DAYS, make_manage_token, make_meeting_token
from tests.integration.test_lifecycle import book, refused, show, when
from tests.support import iso

pytestmark = pytest.mark.integration

ANYTIME = {"cancel": {"allowed": True, "min_notice_hours": 0, "refund_percent": 100},
           "reschedule": {"allowed": True, "min_notice_hours": 0, "fee_percent": 0}}


def tokens_of(c, session_id):
    return make_manage_token(c.settings.secret_key, session_id), make_meeting_token(c.settings.secret_key, session_id)


def test_a_manage_link_stops_changing_its_session_once_it_ended_and_stops_opening_after_30_days(
        container, db_backend, clock):
    c = container
    shown = book(c, clock, 3, **ANYTIME)
    first, second, third = shown["sessions"]
    manage, info = tokens_of(c, first["id"])
    # the URLs the booking object gives are these tokens, each on its own page
    assert first["manage_url"].endswith(f"/manage/{manage}")
    assert first["conferencing_info_url"].endswith(f"/meeting/{info}")

    with c.session_factory() as db:
        link = manage_link(db, c.settings.secret_key, manage, clock())
        assert link.session_id == first["id"] and link.booking_id == shown["id"] and link.can_change
        assert meeting_link(db, c.settings.secret_key, info, clock()).can_change is False
        # one kind is never the other
        assert manage_link(db, c.settings.secret_key, info, clock()) is None
        assert meeting_link(db, c.settings.secret_key, manage, clock()) is None

    # a meeting-info token cannot cancel
    err = refused(lifecycle.cancel_sessions, c, [first["id"]], tokens=[info], change_key=uuid.uuid4().hex)
    assert err.code == "invalid_token"

    clock.now = when(first["end"])  # the session has ended; the policy (no notice) would still allow it
    err = refused(lifecycle.cancel_sessions, c, [first["id"]], tokens=[manage], change_key=uuid.uuid4().hex)
    assert err.code == "manage_link_expired"
    err = refused(lifecycle.reschedule_session, c, first["id"], iso(when(third["start"]) + timedelta(days=2)),
                  token=manage, change_key=uuid.uuid4().hex)
    assert err.code == "manage_link_expired"
    assert show(c, shown["id"])["sessions"][0]["status"] == "confirmed"
    # the CLI's synchronous check says the same
    assert refused(lifecycle.preview_cancel, c, [first["id"]], tokens=[manage]).code == "manage_link_expired"

    # the other sessions' links still change theirs; the admin is not bound
    third_manage, _ = tokens_of(c, third["id"])
    with c.session_factory() as db:
        link = manage_link(db, c.settings.secret_key, manage, clock())
        assert link is not None and not link.can_change  # still opens, read-only
        assert manage_link(db, c.settings.secret_key, third_manage, clock()).can_change
    lifecycle.cancel_sessions(c, [first["id"]], admin=True, change_key=uuid.uuid4().hex)

    last_end = max(when(s["end"]) for s in shown["sessions"])
    clock.now = last_end + timedelta(days=VIEW_DAYS) - timedelta(seconds=1)
    with c.session_factory() as db:
        assert manage_link(db, c.settings.secret_key, manage, clock()) is not None
        assert meeting_link(db, c.settings.secret_key, info, clock()) is not None
    clock.now = last_end + timedelta(days=VIEW_DAYS)
    with c.session_factory() as db:
        assert manage_link(db, c.settings.secret_key, manage, clock()) is None
        assert meeting_link(db, c.settings.secret_key, info, clock()) is None
        assert manage_link(db, c.settings.secret_key, third_manage, clock()) is None


def test_unknown_or_forged_links_open_nothing(container, clock):
    c = container
    with c.session_factory() as db:
        for token in [make_manage_token(c.settings.secret_key, "ss_nosuchsession"), "ss_x.forged" + "A" * 30,
                      make_manage_token("another-key-0123456789abcdef", "ss_x"), "", None, "x" * 5000]:
            assert manage_link(db, c.settings.secret_key, token, clock()) is None
            assert meeting_link(db, c.settings.secret_key, token, clock()) is None
