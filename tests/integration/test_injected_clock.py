"""Emails and their calendar files are dated by the container's clock, not the wall clock: the
Date header and each VEVENT's DTSTAMP are what the injected clock said, so output is
deterministic in tests (and a replayed run writes the same files)."""
from datetime import timedelta
from email import message_from_bytes, policy

from services.booking import submit_booking
from services.notifications.outbox import deliver
from tests.support import apply_config, booking_request, daily_slots, drain, package_config


def test_confirmation_email_and_ics_are_dated_by_the_injected_clock(container, clock):
    apply_config(container, package_config(3))
    composed_at = clock()
    submit_booking(container, booking_request(daily_slots(clock() + timedelta(days=3), 3)))
    drain(container)  # runs the saga and the email outbox's delivery (to the file outbox)
    deliver(container)
    emails = sorted(container.settings.outbox_dir.glob("*.eml"))
    assert len(emails) == 2
    stamp = "DTSTAMP:" + composed_at.strftime("%Y%m%dT%H%M%SZ")
    for path in emails:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg["Date"].datetime == composed_at
        ics = next(p for p in msg.walk() if p.get_content_type() == "text/calendar").get_content()
        assert ics.count("DTSTAMP:") == 3 and ics.count(stamp) == 3, ics
