"""The compose functions that attach a calendar file date it (DTSTAMP) with the `now` they are
given: the container's clock, so the same change composed twice writes the same file."""
from datetime import datetime, timezone

from services.notifications import compose
from tests.unit.notification_samples import sample_view

NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
STAMP = "DTSTAMP:20310506T070809Z"


def _ics(specs) -> list[str]:
    return [a["content"] for s in specs for a in s.attachments if a["filename"].endswith(".ics")]


def test_every_calendar_file_carries_the_given_now():
    view = sample_view()
    first = view.sessions[0]
    files = (_ics(compose.booking_confirmed(view, now=NOW))
             + _ics(compose.sessions_cancelled(view, [first.id], 0, "chg-1", now=NOW))
             + _ics(compose.session_rescheduled(view, first.id, first.start, first.end, 0, "chg-2", now=NOW)))
    assert len(files) == 6
    for content in files:
        stamps = [line for line in content.splitlines() if line.startswith("DTSTAMP:")]
        assert stamps and all(line == STAMP for line in stamps), content
