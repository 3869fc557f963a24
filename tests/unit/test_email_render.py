"""Rendering every notification email, in both formats, from sample booking views (no I/O)."""
from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import timedelta

import pytest
from tests.unit.notification_samples import sample_policies, sample_view, with_session

from services.errors import InvalidInput
from services.notifications import compose
from services.notifications.render import environment, one_line, policy_lines, render_email, safe_url
from services.notifications.sender import build_email
from core.paths import TEMPLATES_DIR

FROM = "sessionpack <no-reply@sessionpack.local>"
HEADERS = {"From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Sessionpack-Kind",
           "MIME-Version", "Content-Type"}
EMAIL_NAMES = sorted(
    "booking_confirmed_customer booking_confirmed_owner booking_failed_customer "
    "sessions_cancelled_customer sessions_cancelled_owner session_rescheduled_customer "
    "session_rescheduled_owner refund_issued_customer reminder_customer reminder_owner "
    "approval_requested_customer approval_requested_owner booking_declined_customer "
    "approval_expired_owner request_withdrawn_customer request_withdrawn_owner reschedule_failed_customer payment_alert_owner".split()
)


def all_specs(view=None) -> list[compose.EmailMessageSpec]:
    """One of every email, each built the way the service will build it."""
    view = view or sample_view()
    s = view.sessions
    cancelled = with_session(with_session(view, s[2].id, status="cancelled", sequence=1),
                             s[3].id, status="cancelled", sequence=1)
    moved = with_session(view, s[4].id, start=s[4].start + timedelta(days=1),
                         end=s[4].end + timedelta(days=1), sequence=1)
    pending = replace(view, status="awaiting_approval",
                      sessions=[replace(x, status="held", meeting=None) for x in view.sessions])
    return [
        *compose.booking_confirmed(view),
        *compose.booking_failed(replace(view, status="failed", paid_cents=0,
                                        failure={"step": "payment", "message": "Your card was declined."})),
        *compose.sessions_cancelled(cancelled, [s[2].id, s[3].id], 8000, "act_cancel_1"),
        *compose.session_rescheduled(moved, s[4].id, s[4].start, s[4].end, 800, "act_move_1"),
        *compose.refund_issued(replace(view, refunded_cents=2500), 2500, "act_refund_1"),
        *compose.reschedule_failed(view, s[4].id, 800, "act_move_2"),
        *compose.reminder(view, s[0].id, "customer", 1440),
        *compose.reminder(view, s[0].id, "owner", 60),
        *compose.approval_requested(pending),
        *compose.booking_declined(pending, "Fully booked that week"),
        *[e for e in compose.booking_declined(pending, None, expired=True) if e.kind == "approval_expired_owner"],
        *compose.request_withdrawn(replace(pending, status="cancelled"), "Found another time"),
        *compose.payment_alert(view, "dispute", "dp_1", title="A payment is disputed",
                               text="Sam Lee disputed 800.00 USD with their bank."),
    ]


def by_kind(specs) -> dict[str, compose.EmailMessageSpec]:
    return {spec.kind: spec for spec in specs}


# -- every email ---------------------------------------------------------------------------------
def test_every_email_folder_has_its_three_templates():
    folders = sorted(p.name for p in (TEMPLATES_DIR / "email").iterdir() if p.is_dir())
    assert folders == EMAIL_NAMES
    for name in folders:
        for part in ("subject.txt", "body.txt", "body.html"):
            assert (TEMPLATES_DIR / "email" / name / part).is_file(), f"{name}/{part}"


@pytest.mark.parametrize("kind", EMAIL_NAMES)
def test_every_email_renders_in_both_formats(kind):
    spec = by_kind(all_specs())[kind]
    view = sample_view()
    assert spec.subject and "\n" not in spec.subject and spec.subject == spec.subject.strip()
    assert view.event_name in spec.subject
    assert spec.text.startswith(f"Hi {spec.to_name},")
    assert spec.html.lstrip().startswith("<!DOCTYPE html>") and spec.html.rstrip().endswith("</html>")
    assert f"Hi {spec.to_name}," in spec.html
    assert view.event_name in spec.text and view.event_name in spec.html
    owner = kind.endswith("_owner")
    assert spec.to_addr == (view.owner_email if owner else view.customer_email)
    assert spec.reply_to == (view.customer_email if owner else view.owner_email)
    # The owner's start link never reaches a customer, in any part.
    if not owner:
        parts = [spec.text, spec.html, *(a["content"] for a in spec.attachments)]
        assert not any("HOSTSECRET" in part for part in parts)


def test_every_email_has_a_distinct_message_id_and_composing_again_gives_the_same_ids():
    first, second = all_specs(), all_specs()
    ids = [spec.message_id for spec in first]
    assert len(set(ids)) == len(ids)
    assert ids == [spec.message_id for spec in second]
    assert all(i.startswith("<") and i.endswith("@sessionpack>") for i in ids)


def test_change_key_and_sequence_make_new_message_ids():
    view = sample_view()
    s = view.sessions[0]
    one = compose.sessions_cancelled(view, [s.id], 0, "act_1")[0].message_id
    two = compose.sessions_cancelled(view, [s.id], 0, "act_2")[0].message_id
    assert one != two
    # A key with odd characters still makes a valid, distinct id.
    odd = compose.sessions_cancelled(view, [s.id], 0, "act 1/β")[0].message_id
    assert " " not in odd and odd not in (one, two)
    before = compose.reminder(view, s.id, "customer", 60)[0].message_id
    after = compose.reminder(with_session(view, s.id, sequence=1), s.id, "customer", 60)[0].message_id
    assert before != after


# -- the consolidated confirmation -------------------------------------------------------------
def test_confirmation_lists_every_session_in_the_customers_zone_across_dst():
    customer = compose.booking_confirmed(sample_view())[0]
    for text in (customer.text, customer.html):
        for n in range(1, 11):
            assert f"Session {n} of 10" in text
        # Berlin sees New York's 09:00 at 15:00, then 14:00 between the US (8 March) and the
        # EU (29 March) changes, then 15:00 again.
        assert "Mon 2 Mar 2026, 15:00\u201316:00 (Europe/Berlin)" in text
        assert "Mon 9 Mar 2026, 14:00\u201315:00 (Europe/Berlin)" in text
        assert "Wed 25 Mar 2026, 14:00\u201315:00 (Europe/Berlin)" in text
        assert "Mon 30 Mar 2026, 15:00\u201316:00 (Europe/Berlin)" in text


def test_owner_copy_uses_the_owners_zone_and_shows_host_links():
    owner = compose.booking_confirmed(sample_view())[1]
    assert owner.to_addr == "dana@example.com"
    for text in (owner.text, owner.html):
        assert "Mon 2 Mar 2026, 09:00\u201310:00 (America/New_York)" in text
        assert "Mon 9 Mar 2026, 09:00\u201310:00 (America/New_York)" in text
        for n in range(1, 11):
            assert f"HOSTSECRET{n}" in text
        assert "sam@example.org" in text


def test_every_session_carries_its_conferencing_details_and_links():
    view = sample_view()
    customer = compose.booking_confirmed(view)[0]
    for s in view.sessions:
        m = s.meeting
        for text in (customer.text, customer.html):
            assert m.meeting_id in text and m.password in text and m.dial_in in text
            assert s.conferencing_info_url in text and s.manage_url in text
        assert m.join_url in customer.text
        assert f'href="{m.join_url}"' in customer.html
        assert f'href="{s.manage_url}"' in customer.html
    # Each detail sits next to its own session, not in a list elsewhere.
    block = customer.text.split("Session 3 of 10:")[1].split("Session 4 of 10:")[0]
    third = view.sessions[2]
    assert third.meeting.join_url in block and third.manage_url in block


def test_confirmation_shows_price_paid_policies_and_attaches_the_calendar():
    customer, owner = compose.booking_confirmed(sample_view())
    for spec in (customer, owner):
        assert "Package price: $800.00" in spec.text and "Paid: $800.00" in spec.text
        assert "$800.00" in spec.html
        assert "Cancel up to 24 hours before a session for a 50 % refund of $80.00 per session." in spec.text
        (ics,) = spec.attachments
        assert ics["filename"].endswith(".ics") and ics["content_type"].startswith("text/calendar; method=PUBLISH")
        assert ics["content"].count("BEGIN:VEVENT") == 10
    assert "HOSTSECRET" in owner.attachments[0]["content"]


def test_free_booking_has_no_money_wording():
    customer, owner = compose.booking_confirmed(sample_view(price_cents=0))
    for spec in (customer, owner):
        assert "$" not in spec.text and "$" not in spec.html
        assert "Payment" not in spec.text and "refund" not in spec.text.lower()
        assert "Cancel up to 24 hours before a session." in spec.text


def test_withdrawn_request_tells_each_side_once_with_who_withdrew_it():
    view = replace(sample_view(1, 0), status="cancelled")
    customer, owner = compose.request_withdrawn(view, "Found\r\nanother time")
    assert (customer.kind, owner.kind) == ("request_withdrawn_customer", "request_withdrawn_owner")
    assert customer.subject.startswith("Withdrawn: your request") and owner.subject.startswith("Request withdrawn:")
    for spec in (customer, owner):
        assert "Reason: Found another time" in spec.text and "Found another time" in spec.html
        assert "administrator" not in spec.text and not spec.attachments
        assert "charged" not in spec.text  # a free request: no money wording
    assert "withdrawn by Sam Lee before you decided" in owner.text
    assert "Nothing was booked" in customer.text
    by_admin = compose.request_withdrawn(view, None, by_admin=True)
    assert all("by the booking page's administrator" in spec.text for spec in by_admin)
    assert "Reason:" not in by_admin[0].text
    # One withdrawal per booking: composing it again gives the same ids (the outbox skips them).
    assert [s.message_id for s in by_admin] == [customer.message_id, owner.message_id]


# -- policies in plain words -------------------------------------------------------------------
def test_policy_wording_for_a_150_dollar_three_session_package():
    view = sample_view(3, 15000)
    assert policy_lines(view) == [
        "Cancel up to 24 hours before a session for a 50 % refund of $50.00 per session",
        "Reschedule up to 24 hours before for a fee of $5.00",
    ]


def test_policy_wording_names_both_amounts_when_costs_differ_by_a_cent():
    view = sample_view(3, 5000)  # 16.67 + 16.67 + 16.66
    cancel, reschedule = policy_lines(view)
    assert cancel == "Cancel up to 24 hours before a session for a 50 % refund of $16.67 or $16.66 per session"
    assert reschedule == "Reschedule up to 24 hours before for a fee of $1.67"  # 10 % of either rounds to 1.67


@pytest.mark.parametrize("policies, expected", [
    (dict(cancel_allowed=False, reschedule_allowed=False), ["Cancellation is not available", "Rescheduling is not available"]),
    (dict(refund_percent=100, fee_percent=0),
     ["Cancel up to 24 hours before a session for a full refund of $50.00 per session",
      "Reschedule up to 24 hours before a session at no charge"]),
    (dict(refund_percent=0, cancel_min_notice_hours=48, reschedule_min_notice_hours=0.5),
     ["Cancel up to 48 hours before a session; no refund is given",
      "Reschedule up to 30 minutes before for a fee of $5.00"]),
    (dict(cancel_min_notice_hours=1, refund_percent=12.5),
     ["Cancel up to 1 hour before a session for a 12.5 % refund of $50.00 per session",
      "Reschedule up to 24 hours before for a fee of $5.00"]),
])
def test_policy_wording_variants(policies, expected):
    assert policy_lines(sample_view(3, 15000, policies=sample_policies(**policies))) == expected


def test_policy_wording_for_zero_decimal_currency():
    view = sample_view(3, 3000, currency="JPY")
    assert policy_lines(view)[0] == "Cancel up to 24 hours before a session for a 50 % refund of 1000 JPY per session"


# -- change notices and reminders ----------------------------------------------------------------
def test_cancellation_notice_lists_the_cancelled_sessions_and_the_refund():
    specs = by_kind(all_specs())
    for kind in ("sessions_cancelled_customer", "sessions_cancelled_owner"):
        spec = specs[kind]
        assert "Session 3 of 10" in spec.text and "Session 4 of 10" in spec.text
        assert "Session 5 of 10" not in spec.text and "Session 5 of 10" not in spec.html
        assert "Refund for this cancellation: $80.00" in spec.text and "$80.00" in spec.html
        assert "8 sessions are still booked" in spec.text
        assert spec.subject.startswith("Cancelled: 2 sessions")
        (ics,) = spec.attachments
        assert "METHOD:CANCEL" in ics["content"] and "method=CANCEL" in ics["content_type"]


def test_reschedule_notice_shows_old_and_new_time_and_the_fee():
    spec = by_kind(all_specs())["session_rescheduled_customer"]
    assert "Was: Mon 16 Mar 2026, 14:00\u201315:00 (Europe/Berlin)" in spec.text
    assert "Now: Tue 17 Mar 2026, 14:00\u201315:00 (Europe/Berlin)" in spec.text
    assert "Rescheduling fee: $8.00" in spec.text
    assert "Tue 17 Mar 2026" in spec.subject
    assert spec.session_id == "ss_05abc"
    assert "UID:ss_05abc@sessionpack" in spec.attachments[0]["content"]


def test_reminder_carries_one_sessions_full_details_as_if_booked_alone():
    view = sample_view(3, 5000)
    spec = compose.reminder(view, view.sessions[2].id, "customer", 1440)[0]
    third = view.sessions[2]
    for part in (third.meeting.join_url, third.meeting.password, third.manage_url, third.conferencing_info_url):
        assert part in spec.text
    assert "Session 1 of 3" not in spec.text and view.sessions[0].manage_url not in spec.text
    # Worded from this session's own cost (16.66), not the package's range.
    assert "50 % refund of $16.66 per session" in spec.text
    assert spec.session_id == third.id and not spec.attachments


def test_single_session_booking_reads_naturally():
    view = sample_view(1, 5000)
    customer = compose.booking_confirmed(view)[0]
    assert "of 1" not in customer.text
    assert "Your session: Mon 2 Mar 2026" in customer.text
    assert customer.subject.startswith("Confirmed: Consultation with Dana Reyes, Mon 2 Mar 2026")


# -- safety: escaping, header injection, addresses ---------------------------------------------------
def test_script_in_a_customers_name_is_escaped_in_html():
    view = sample_view(customer_name="<script>alert('x')</script> Sam")
    for spec in all_specs(view):
        assert "<script>" not in spec.html
        if spec.kind.endswith("_owner") or spec.to_name.startswith("<"):
            assert "&lt;script&gt;" in spec.html


def test_javascript_urls_are_not_made_clickable():
    assert safe_url("javascript:alert(1)") == "#"
    assert safe_url("https://zoom.us/j/1") == "https://zoom.us/j/1"
    view = sample_view()
    view = with_session(view, view.sessions[0].id,
                        meeting=replace(view.sessions[0].meeting, join_url="javascript:alert(1)"))
    assert 'href="javascript:' not in compose.booking_confirmed(view)[0].html


def test_cr_lf_in_names_and_subject_cannot_inject_headers():
    view = sample_view(customer_name="Sam\r\nBcc: victim@example.net", owner_name="Dana\nX-Evil: 1",
                       event_name="Consult\r\n\r\nInjected body")
    for spec in all_specs(view):
        assert "\r" not in spec.subject and "\n" not in spec.subject
        assert "\n" not in spec.to_name
        raw = build_email(spec, FROM).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Bcc"] is None and parsed["X-Evil"] is None
        assert parsed["Message-ID"].strip() == spec.message_id
        head = raw.split(b"\n\n", 1)[0].decode()
        names = {line.split(":", 1)[0] for line in head.splitlines() if not line[:1].isspace()}
        assert names == HEADERS
    # And a spec whose subject was tampered with directly is cleaned by the builder too.
    spec = replace(compose.booking_confirmed(sample_view())[0], subject="Hi\r\nBcc: a@b.c", to_name="A\r\nCc: d@e.f")
    parsed = email.message_from_bytes(build_email(spec, FROM).as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["Subject"] == "Hi Bcc: a@b.c"


def test_subjects_collapse_control_characters():
    assert one_line(" a\r\n\tb\x00c\u2028d  ") == "a b c d"
    rendered = render_email("refund_issued_customer", {
        "booking": sample_view(event_name="X\r\nY"), "audience": "customer", "tz": "UTC",
        "recipient_name": "Sam", "sessions": [], "amount_cents": 100, "reason": None})
    assert rendered.subject == "Refund of $1.00 for X Y"


@pytest.mark.parametrize("field", ["customer_email", "owner_email"])
@pytest.mark.parametrize("bad", ["not-an-email", "sam@example.org\r\nBcc: x@y.z", "", "a@@b.c"])
def test_invalid_addresses_are_refused(field, bad):
    with pytest.raises(InvalidInput) as info:
        compose.booking_confirmed(sample_view(**{field: bad}))
    assert info.value.code == "invalid_email"


def test_templates_use_strict_undefined_and_escape_only_html():
    env = environment()
    assert env.undefined.__name__ == "StrictUndefined"
    with pytest.raises(Exception):
        render_email("refund_issued_customer", {"booking": sample_view()})


def test_owner_emails_never_carry_a_customer_link_and_link_the_console():
    """The owner (and whoever reads the owner's mail or calendar) never gets the customer's power."""
    view = sample_view()
    customer_links = [s.manage_url for s in view.sessions] + [s.conferencing_info_url for s in view.sessions]
    owner_specs = [spec for spec in all_specs(view) if spec.to_addr == view.owner_email]
    assert {spec.kind for spec in owner_specs} >= {"booking_confirmed_owner", "sessions_cancelled_owner",
                                                   "session_rescheduled_owner", "reminder_owner"}
    for spec in owner_specs:
        parts = [spec.text, spec.html] + [a["content"].replace("\r\n ", "") for a in spec.attachments]
        for part in parts:
            for link in customer_links:
                assert link not in part, f"{spec.kind} carries a customer link"
            assert "/manage/" not in part and "/meeting/" not in part
    confirmed = by_kind(owner_specs)["booking_confirmed_owner"]
    console = view.sessions[0].owner_url
    assert console in confirmed.text and f'href="{console}"' in confirmed.html
    assert console in confirmed.attachments[0]["content"].replace("\r\n ", "")


def test_customer_links_are_separate_manage_and_meeting_pages():
    view = sample_view()
    customer = compose.booking_confirmed(view)[0]
    for s in view.sessions:
        assert "/manage/" in s.manage_url and "/meeting/" in s.conferencing_info_url
        assert not s.conferencing_info_url.startswith(s.manage_url)
        assert s.owner_url not in customer.text
