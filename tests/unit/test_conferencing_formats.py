"""What the adapters read from and write to each provider's shapes, without a server."""
from __future__ import annotations

from datetime import datetime, timezone

from services.conferencing import goto, webex, zoom


def test_zoom_passcodes_fit_zooms_rules_and_differ():
    codes = {zoom.new_passcode() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) <= 10 and code.isalnum()
        assert any(c.isdigit() for c in code) and any(c.isalpha() for c in code)


def test_zoom_dial_in_lists_the_numbers_with_meeting_id_and_phone_passcode():
    meeting = {"id": 857, "password": "web", "pstn_password": "123456", "settings": {"global_dial_in_numbers": [
        {"country_name": "US", "city": "New York", "number": "+1 646 558 8656"}, {"number": "+49 69 7104 9922"},
        {"number": "+44 20 1"}, {"number": "+33 1 2"}]}}
    assert zoom.dial_in_text(meeting) == (
        "+1 646 558 8656 (US, New York); +49 69 7104 9922; +44 20 1 — meeting ID 857, passcode 123456")
    assert zoom.dial_in_text({"id": 857, "settings": {}}) is None


def test_webex_dial_in_prefers_telephony_then_sip():
    meeting = {"meetingNumber": "255", "sipAddress": "255@site.webex.com",
               "telephony": {"accessCode": "2551", "callInNumbers": [{"label": "US Toll", "callInNumber": "+1-415"}]}}
    assert webex.dial_in_text(meeting) == "US Toll: +1-415, access code 2551"
    assert webex.dial_in_text({"sipAddress": "255@site.webex.com"}) == "SIP 255@site.webex.com"
    assert webex.dial_in_text({}) is None


def test_webex_host_link_carries_the_host_key_in_the_fragment_only():
    assert webex.host_link({"webLink": "https://s.webex.com/j.php?MTID=m1", "hostKey": "123456"}) == (
        "https://s.webex.com/j.php?MTID=m1#hostKey=123456")
    assert webex.host_link({"webLink": "https://s.webex.com/j.php?MTID=m1"}) == "https://s.webex.com/j.php?MTID=m1"


def test_goto_times_in_every_form_goto_writes():
    expected = datetime(2026, 12, 7, 14, 0, tzinfo=timezone.utc)
    for text in ("2026-12-07T14:00:00Z", "2026-12-07T14:00:00.+0000", "2026-12-07T15:00:00+01:00",
                 "2026-12-07T14:00:00", "2026-12-07T09:00:00.000-0500"):
        assert goto.parse_goto_time(text) == expected, text
    assert goto.parse_goto_time("next tuesday") is None and goto.parse_goto_time(None) is None


def test_goto_dial_in_joins_lines_and_ignores_voip_only():
    assert goto.dial_in_text("United States: +1 (571) 317-3122\nAccess Code: 123-456-789") == (
        "United States: +1 (571) 317-3122; Access Code: 123-456-789")
    assert goto.dial_in_text("VoIP") is None and goto.dial_in_text(None) is None
