"""Errors a new user understands (issue 14): an unknown session is `unknown_session` whatever token
comes with it; a wrong token names the session it was given for, never a position; `--version`."""
from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from tests.support import apply_config, booking_request, daily_slots, inline_cli, package_config


def booked(cli, container, clock, n=2) -> dict:
    apply_config(container, package_config(n))
    request = booking_request(daily_slots(clock() + timedelta(days=3), n))
    path = container.settings.var_dir / "request.json"
    path.write_text(json.dumps(request))
    code, shown = cli("book", str(path), "--wait", "30")
    assert code == 0 and shown["status"] == "confirmed", shown
    return shown


def token_of(session: dict) -> str:
    return session["manage_url"].rsplit("/", 1)[-1]


def test_an_unknown_session_is_unknown_session_with_or_without_a_token(container, clock):
    with inline_cli(container) as cli:
        code, out = cli("cancel", "ss_nope", "--token", "x")
        assert (code, out["error"]["code"]) == (2, "unknown_session") and "ss_nope" in out["error"]["message"]
        code, out = cli("cancel", "ss_nope", "--admin")
        assert (code, out["error"]["code"]) == (2, "unknown_session")


def test_a_wrong_token_names_its_session_not_a_position(container, clock):
    with inline_cli(container) as cli:
        first, second = booked(cli, container, clock)["sessions"]
        # The tokens swapped: each is genuine, but for the other session.
        code, out = cli("cancel", first["id"], second["id"], "--token", token_of(second), "--token", token_of(first))
    message = out["error"]["message"]
    assert (code, out["error"]["code"]) == (1, "invalid_token")
    assert first["id"] in message and "token 1" not in message and "manage_url" in message
    assert token_of(first) not in message and token_of(second) not in message


def test_version():
    from cli.main import main

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("sessionpack ")
    assert result.output.split()[1][0].isdigit()
