"""`config apply` on both databases: upserts, all-or-nothing, and the CLI's exit codes."""
import json
import subprocess
import sys

import pytest

from models import BookingPage, EventType, Owner
from services.errors import InvalidInput
from tests.support import apply_config, example_config


def test_apply_upserts_by_slug(container, db_backend):
    assert apply_config(container, example_config()) == {"owners": 1, "booking_pages": 1, "event_types": 1}
    cfg = example_config()
    cfg["booking_pages"][0]["event_types"][0]["name"] = "Renamed"
    apply_config(container, cfg)
    with container.session_factory() as db:
        rows = db.query(EventType).all()
        assert [(r.slug, r.name, r.price_cents, r.sessions_per_booking) for r in rows] == [("consult-10", "Renamed", 80000, 10)]
        assert db.get(Owner, "dana").timezone == "America/New_York"


def test_refused_config_writes_nothing(container, db_backend):
    cfg = example_config()
    cfg["booking_pages"][0]["event_types"][0]["scheduling"]["booking_mode"] = "manual"
    with pytest.raises(InvalidInput):
        apply_config(container, cfg)
    with container.session_factory() as db:
        assert db.query(Owner).count() == 0 and db.query(BookingPage).count() == 0


def test_unknown_owner_is_refused(container, db_backend):
    cfg = example_config()
    cfg["owners"] = []
    with pytest.raises(InvalidInput) as err:
        apply_config(container, cfg)
    assert "owner 'dana' is unknown" in err.value.message


def test_removed_event_types_are_deactivated_not_deleted(container):
    cfg = example_config()
    extra = dict(cfg["booking_pages"][0]["event_types"][0], slug="intro", name="Intro")
    extra["scheduling"] = {"sessions_per_booking": 1}
    cfg["booking_pages"][0]["event_types"].append(extra)
    apply_config(container, cfg)
    apply_config(container, example_config())
    with container.session_factory() as db:
        assert {(r.slug, r.active) for r in db.query(EventType)} == {("consult-10", True), ("intro", False)}


def run_cli(args, env, cwd):
    from pathlib import Path

    sessionpack = Path(sys.executable).parent / "sessionpack"
    proc = subprocess.run([str(sessionpack), *args], capture_output=True, text=True, env=env, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_apply_and_refusal_exit_codes(tmp_path, cli_env):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(example_config()))
    assert run_cli(["migrate"], cli_env, tmp_path)[0] == 0
    code, out, _ = run_cli(["config", "apply", str(good)], cli_env, tmp_path)
    assert code == 0 and json.loads(out)["applied"]["event_types"] == 1

    bad_cfg = example_config()
    bad_cfg["booking_pages"][0]["event_types"][0]["scheduling"]["max_bookings_per_week"] = 3
    bad = tmp_path / "bad.yaml"
    import yaml
    bad.write_text(yaml.safe_dump(bad_cfg))
    code, out, _ = run_cli(["config", "apply", str(bad)], cli_env, tmp_path)
    error = json.loads(out)["error"]
    assert code == 2 and error["code"] == "config_rule_conflict"
    assert "max_bookings_per_week" in error["message"]

    code, out, _ = run_cli(["config", "apply", str(tmp_path / "missing.json")], cli_env, tmp_path)
    assert code == 2 and json.loads(out)["error"]["code"] == "config_unreadable"
