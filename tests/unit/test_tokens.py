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
