"""The orphan-meeting sweep's pieces that need no I/O: reading tags, the builtin provider (nothing
to sweep), its settings and its place in beat's schedule. The sweep itself runs against the
loopback providers in tests/integration/test_conferencing_reconcile.py."""
from __future__ import annotations

from datetime import datetime, timezone

from services.conferencing import BuiltinProvider, MeetingRequest
from services.conferencing.http import session_tag, tagged_agenda, tagged_sessions
from core.settings import Settings

REQUEST = MeetingRequest("ss_abc234", "Coaching, session 1 of 3", datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc),
                         60, "America/New_York")


def test_tagged_sessions_reads_every_tag_in_every_text():
    agenda = tagged_agenda("Coaching", "ss_one")
    assert tagged_sessions(agenda) == {"ss_one"}
    assert tagged_sessions(agenda, f"moved {session_tag('ss_two')}", None, "") == {"ss_one", "ss_two"}
    assert tagged_sessions("[sessionpack:]", "[sessionpack:ss_x", "no tag", None) == set()


def test_the_builtin_provider_has_nothing_to_sweep():
    builtin = BuiltinProvider("https://book.example.com", "secret")
    builtin.create(REQUEST)
    assert builtin.tagged_meetings([REQUEST]) == {}


def test_grace_and_window_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SESSIONPACK_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("MEETING_SWEEP_GRACE_SECONDS", raising=False)
    monkeypatch.delenv("MEETING_SWEEP_WINDOW_HOURS", raising=False)
    defaults = Settings()
    assert (defaults.meeting_sweep_grace_seconds, defaults.meeting_sweep_window_hours) == (600.0, 24.0)
    monkeypatch.setenv("MEETING_SWEEP_GRACE_SECONDS", "900")
    monkeypatch.setenv("MEETING_SWEEP_WINDOW_HOURS", "6")
    tuned = Settings()
    assert (tuned.meeting_sweep_grace_seconds, tuned.meeting_sweep_window_hours) == (900.0, 6.0)


def test_beat_runs_the_sweep():
    import tasks  # noqa: F401  (registers the tasks)
    from worker.app import app

    entry = app.conf.beat_schedule["sweep-orphan-meetings"]
    assert entry["task"] == "sessionpack.sweep_orphan_meetings" and entry["task"] in app.tasks
    assert entry["schedule"] <= 600  # at least once per default grace period
