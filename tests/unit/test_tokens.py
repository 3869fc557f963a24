from services.tokens import make_token, redact, token_session_id

KEY = "k" * 32


def test_token_round_trip_and_binding():
    token = make_token(KEY, "ss_abc")
    assert token_session_id(KEY, token) == "ss_abc"
    # bound to its session: the signature of one session does not open another
    forged = "ss_xyz." + token.split(".")[1]
    assert token_session_id(KEY, forged) is None


def test_tampered_or_foreign_tokens_are_refused():
    token = make_token(KEY, "ss_abc")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert token_session_id(KEY, flipped) is None
    assert token_session_id("another-key" * 3, token) is None
    for junk in ["", "ss_abc", "a.b.c", "bk_1.xyz", None, 42, "ss_" + "a" * 300 + ".x"]:
        assert token_session_id(KEY, junk) is None


def test_redact_hides_tokens_in_text():
    token = make_token(KEY, "ss_abc123")
    text = f"GET /manage/{token} failed"
    assert token not in redact(text)
    assert "[token]" in redact(text)


from datetime import datetime, timedelta, timezone  # noqa: E402

from services.tokens import (  # noqa: E402
    MANAGE, MEETING_INFO, VIEW_DAYS, link_rights, make_manage_token, make_meeting_token, verify_manage_token,
    verify_meeting_token,
)


def test_purposes_are_bound_into_the_signature():
    manage, info = make_manage_token(KEY, "ss_abc"), make_meeting_token(KEY, "ss_abc")
    assert manage != info
    assert verify_manage_token(KEY, manage) == "ss_abc" and verify_meeting_token(KEY, info) == "ss_abc"
    # one kind can never be used as the other
    assert verify_manage_token(KEY, info) is None
    assert verify_meeting_token(KEY, manage) is None
    # the old names are the manage token's
    assert make_token(KEY, "ss_abc") == manage and token_session_id(KEY, manage) == "ss_abc"
    assert token_session_id(KEY, info) is None
    assert redact(f"/meeting/{info}") == "/meeting/[token]"


def test_meeting_tokens_refuse_junk_like_manage_tokens():
    for junk in ["", "ss_abc", "a.b.c", "bk_1.xyz", None, 42, "ss_" + "a" * 300 + ".x", "ss_é.x"]:
        assert verify_meeting_token(KEY, junk) is None and verify_manage_token(KEY, junk) is None


T0 = datetime(2030, 1, 10, 14, 0, tzinfo=timezone.utc)


def test_manage_token_changes_until_its_session_ends_then_views_for_thirty_days():
    end = T0 + timedelta(hours=1)
    last = T0 + timedelta(days=14, hours=1)  # the package's last session
    ends = [end, T0 + timedelta(days=7, hours=1), last]
    before = link_rights(T0 + timedelta(minutes=59), end, ends)
    assert before.can_change and before.can_view
    at_end = link_rights(end, end, ends)
    assert not at_end.can_change and at_end.can_view
    assert link_rights(last + timedelta(days=VIEW_DAYS) - timedelta(seconds=1), end, ends).can_view
    over = link_rights(last + timedelta(days=VIEW_DAYS), end, ends)
    assert not over.can_view and not over.can_change
    assert over.view_until == last + timedelta(days=VIEW_DAYS)


def test_meeting_token_never_changes_anything():
    end = T0 + timedelta(hours=1)
    rights = link_rights(T0 - timedelta(days=3), end, [end], MEETING_INFO)
    assert rights.can_view and not rights.can_change
    assert link_rights(T0 - timedelta(days=3), end, [end], MANAGE).can_change
