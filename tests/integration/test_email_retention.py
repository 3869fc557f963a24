"""Emails' bodies (manage links, passcodes, host links) are emptied EMAIL_BODY_RETENTION_DAYS
after delivery by beat's sweep; the metadata stays; doctor says when the sweep is behind."""
from __future__ import annotations

from datetime import timedelta

import pytest

from models import OutboxEmail
from services.booking import submit_booking
from services.notifications.outbox import purge_bodies
from tests.support import apply_config, booking_request, daily_slots, drain, package_config
from cli import doctor
from worker.beat import beat_schedule

pytestmark = pytest.mark.integration


def emails(c) -> list[OutboxEmail]:
    with c.session_factory() as db:
        rows = db.query(OutboxEmail).order_by(OutboxEmail.id).all()
        db.expunge_all()
        return rows


def test_bodies_are_emptied_after_the_retention_and_metadata_kept(container, db_backend, clock):
    c = container
    c.settings = c.settings.model_copy(update={"email_body_retention_days": 30})
    apply_config(c, package_config(2))
    submit_booking(c, booking_request(daily_slots(clock() + timedelta(days=2), 2)))
    drain(c)
    before = emails(c)
    assert len(before) == 2 and all(e.status == "sent" for e in before)
    assert all("/manage/" in e.text_body or "/owner/" in e.text_body for e in before)
    assert purge_bodies(c) == {"purged": 0}  # nothing is old enough yet

    clock.advance(days=29, hours=23)
    assert purge_bodies(c) == {"purged": 0}
    assert doctor.email_retention(c)[0] is True
    clock.advance(days=2)  # a day past the retention, the sweep has not run: doctor says so
    ok, detail = doctor.email_retention(c)
    assert not ok and "2 email(s)" in detail and "beat" in detail

    assert purge_bodies(c) == {"purged": 2}
    after = emails(c)
    for old, new in zip(before, after):
        assert new.text_body == "" and new.html_body == "" and new.attachments == []
        assert new.body_purged_at == clock()
        # what was sent to whom and when stays
        assert (new.kind, new.to_addr, new.subject, new.message_id, new.status, new.sent_at) == \
               (old.kind, old.to_addr, old.subject, old.message_id, old.status, old.sent_at)
    assert purge_bodies(c) == {"purged": 0}  # once
    ok, detail = doctor.email_retention(c)
    assert ok and "2 emptied" in detail and "EMAIL_BODY_RETENTION_DAYS" in detail


def test_the_sweep_is_on_beats_schedule_and_the_setting_comes_from_the_environment(monkeypatch, tmp_path):
    from core.settings import Settings
    from worker.app import app

    monkeypatch.setenv("EMAIL_BODY_RETENTION_DAYS", "7")
    monkeypatch.setenv("SESSIONPACK_VAR_DIR", str(tmp_path))
    settings = Settings()
    assert settings.email_body_retention_days == 7
    entry = beat_schedule(settings)["purge-email-bodies"]
    assert entry["task"] == "sessionpack.purge_email_bodies"
    import tasks  # noqa: F401  (registers the tasks)
    assert entry["task"] in app.tasks
