"""`sessionpack owner set-password` as a subprocess: the password from stdin, the contract's
errors, the site-admin flag, and a sign-in with the password afterwards."""
from __future__ import annotations

import json

from tests.support import example_config
from tests.worker_process import cli


def test_set_password_from_stdin(cli_env, tmp_path):
    assert cli(cli_env, "migrate")[0] == 0
    config = tmp_path / "config.json"
    config.write_text(json.dumps(example_config()))
    assert cli(cli_env, "config", "apply", str(config))[0] == 0

    code, out, err = cli(cli_env, "owner", "set-password", "dana", stdin="a long enough password\n")
    assert code == 0 and out == {"owner": "dana", "site_admin": False, "password": "set"}, err
    assert "a long enough password" not in json.dumps(out) + err
    code, out, _ = cli(cli_env, "owner", "set-password", "dana", "--site-admin", stdin="another long password\n")
    assert code == 0 and out["site_admin"] is True

    code, out, _ = cli(cli_env, "owner", "set-password", "nobody", stdin="a long enough password\n")
    assert code == 2 and out["error"]["code"] == "unknown_owner"
    code, out, _ = cli(cli_env, "owner", "set-password", "dana", stdin="short\n")
    assert code == 2 and out["error"]["code"] == "password_too_short"
    code, out, _ = cli(cli_env, "owner", "set-password", "dana", stdin="")
    assert code == 2 and out["error"]["code"] == "password_required"

    from core.settings import Settings
    from core.wiring import build_container
    from services.console.accounts import LoginLimiter, authenticate

    settings = Settings(var_dir=tmp_path / "var", secret_key=cli_env["SECRET_KEY"])
    c = build_container(settings)
    assert authenticate(c, LoginLimiter(), "dana@example.com", "another long password", "127.0.0.1").site_admin
    c.engine.dispose()
