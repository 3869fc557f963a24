"""The MIME bytes written directly (services.notifications.mime, through sender.email_bytes) read
back, with the standard library's parser, as the message the email package builds: the same
headers (Subject with non-ASCII, names that need quotes, Date, Message-ID...), the same parts,
parameters, file names and contents, for every kind of email and for names and subjects that
need encoding, quoting or folding."""
from __future__ import annotations

import email
import email.policy
import random
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from tests.unit.notification_samples import sample_view
from tests.unit.test_email_render import FROM, all_specs

from services.notifications import mime
from services.notifications.sender import POLICY, build_email, email_bytes

NOW = datetime(2026, 2, 1, 8, 30, 5, tzinfo=timezone.utc)


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def shape(message) -> list:
    """Everything a reader sees: per part its headers (boundaries left out: they are random),
    content type, parameters, file name and decoded content."""
    out = []
    for part in message.walk():
        headers = [(k, str(v)) for k, v in part.items() if k.lower() not in ("content-type", "mime-version")]
        params = [(k, v) for k, v in (part.get_params() or []) if k != "boundary"]
        content = None if part.is_multipart() else part.get_content()
        out.append((sorted(headers), part.get_content_type(), params, part.get_filename(), content))
    return out


def assert_same_message(spec, from_addr=FROM):
    for linesep in ("\n", "\r\n"):  # the file outbox's, SMTP's (as smtplib's send_message writes it)
        expected = parsed(build_email(spec, from_addr, now=NOW).as_bytes(policy=POLICY.clone(linesep=linesep)))
        data = email_bytes(spec, from_addr, now=NOW, linesep=linesep)
        message = parsed(data)
        assert not message.defects and all(not p.defects for p in message.walk())
        assert shape(message) == shape(expected)
        head = data.split(linesep.encode() * 2, 1)[0]
        assert head.isascii() and all(len(line) <= 78 for line in head.split(linesep.encode()))
        assert all(len(line) <= 998 for line in data.split(linesep.encode()))
        if linesep == "\r\n":
            assert b"\n" not in data.replace(b"\r\n", b"")
    return message


NAMES = {
    "plain": {},
    "non-ASCII": dict(customer_name="Zo\u00eb Sch\u00f6n", owner_name="\u5c71\u7530 \u592a\u90ce",
                      event_name="S\u00e9ance d\u2019\u00e9t\u00e9 \U0001f600"),
    "quotes needed": dict(customer_name='Lee, Sam (Jr.) "the man"', owner_name="Dr. Dana Reyes; PhD",
                          event_name="Coaching: focus, depth; and <more>"),
    "long": dict(customer_name="Maximilian Alexander " * 6, owner_name="Dana " * 20,
                 event_name="A very long consultation title that will not fit on one header line " * 2),
    "line breaks": dict(customer_name="Sam\r\nBcc: victim@example.net", owner_name="Dana\nX-Evil: 1",
                        event_name="Consult\r\n\r\nInjected body"),
    "encoded-word look-alike": dict(event_name="=?utf-8?q?not_an_encoded_word?=", customer_name="=?x?= Sam"),
}


@pytest.mark.parametrize("names", list(NAMES))
def test_every_email_reads_back_as_the_email_package_builds_it(names):
    for spec in all_specs(sample_view(**NAMES[names])):
        message = assert_same_message(spec)
        assert message["Message-ID"].strip() == spec.message_id
        assert message["Date"].datetime == NOW
        # A folded or non-ASCII subject reads back as the email package's message reads (compared
        # in `shape`), which can gain or lose a space at a fold; it decodes what looks like an
        # encoded word.
        if spec.subject.isascii() and "=?" not in spec.subject and len(spec.subject) <= 69:
            assert message["Subject"] == spec.subject
        assert message["To"].addresses[0].addr_spec == spec.to_addr
        assert message["To"].addresses[0].display_name == spec.to_name


def test_the_confirmation_has_the_parts_and_the_calendar_file():
    spec = all_specs(sample_view(customer_name="Zo\u00eb, \"Q\""))[0]
    message = assert_same_message(spec)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert attachment.get_content_type() == "text/calendar" and attachment.get_param("method") == "PUBLISH"
    assert attachment.get_filename() == "sessions.ics" and attachment.get_content() == spec.attachments[0]["content"]
    assert message["To"].addresses[0].display_name == 'Zo\u00eb, "Q"'


def test_senders_with_names_that_need_quoting_or_encoding():
    spec = all_specs(sample_view())[0]
    for sender in ("Bookings <no-reply@example.com>", "no-reply@example.com", "\u00c9quipe <no-reply@example.com>",
                   '"Dana Reyes, Coaching" <dana@example.com>', "Dana R. <dana@example.com>"):
        assert_same_message(spec, sender)


def test_an_attachment_of_another_shape_goes_through_the_email_package():
    spec = all_specs(sample_view())[0]
    other = replace(spec, attachments=[{"filename": "r\u00e9sum\u00e9 file.pdf", "content_type": "application/pdf",
                                        "content": b"%PDF-1.4 \x00\x01"}])
    assert mime.message_bytes([], "a", "b", other.attachments, POLICY) is None
    message = parsed(email_bytes(other, FROM, now=NOW))
    assert shape(message) == shape(parsed(build_email(other, FROM, now=NOW).as_bytes()))


def test_bodies_of_every_length_and_alphabet_read_back_unchanged():
    rng = random.Random(20261201)
    alphabet = "abc xyz=.\t-\u00e9\u00fc\u4e2d\U0001f600\n"
    spec = all_specs(sample_view())[0]
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        html = "".join(rng.choice(alphabet.replace("\n", "")) * rng.randint(1, 90) for _ in range(rng.randint(1, 6)))
        assert_same_message(replace(spec, text=text, html=html))


def test_plain_headers_are_written_as_the_email_package_folds_them():
    rng = random.Random(7)
    alphabet = "abcXYZ019 .,;:'\"()<>@!#-_=?\u00e9"
    for _ in range(2000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90))).strip()
        assert mime.header("Subject", value, POLICY) == POLICY.header_factory("Subject", value).fold(policy=POLICY)
