"""Real delivery: the SMTP sender against an aiosmtpd server on loopback, and the file outbox."""
from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
from contextlib import contextmanager
from dataclasses import replace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.errors import PermanentError, TransientError
from services.notifications import compose
from services.notifications.sender import FileOutboxSender, SmtpSender, build_sender
from tests.unit.notification_samples import sample_view
from core.settings import Settings

pytestmark = pytest.mark.integration

FROM = "Coaching with Dana <bookings@example.com>"


class Recorder:
    """An aiosmtpd handler that keeps every accepted message and refuses chosen recipients."""

    def __init__(self):
        self.envelopes = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server(port: int | None = None, **smtp_kwargs):
    handler = Recorder()
    port = port or free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def server_tls(tls_files) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, tls_files))
    return context


@pytest.fixture(scope="module")
def confirmation():
    return compose.booking_confirmed(sample_view())[0]


def test_delivers_multipart_alternative_with_the_calendar_attached(confirmation):
    with smtp_server() as (handler, port):
        SmtpSender(f"smtp://127.0.0.1:{port}?timeout=5").send(confirmation, FROM)
    (envelope,) = handler.envelopes
    assert envelope.mail_from == "bookings@example.com"
    assert envelope.rcpt_tos == ["sam@example.org"]
    (msg,) = handler.messages()
    assert msg["Message-ID"].strip() == confirmation.message_id
    assert msg["Subject"] == confirmation.subject
    assert msg["To"].addresses[0].addr_spec == "sam@example.org"
    assert msg["Reply-To"].addresses[0].addr_spec == "dana@example.com"
    assert msg.get_content_type() == "multipart/mixed"
    alternative, calendar = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, html = alternative.iter_parts()
    assert plain.get_content_type() == "text/plain" and "Session 10 of 10" in plain.get_content()
    assert html.get_content_type() == "text/html" and "Session 10 of 10" in html.get_content()
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "PUBLISH"
    assert calendar.get_filename() == "sessions.ics"
    assert calendar.get_content().count("BEGIN:VEVENT") == 10


def test_cancellation_calendar_carries_method_cancel():
    view = sample_view()
    spec = compose.sessions_cancelled(view, [view.sessions[0].id], 0, "act_1")[1]
    with smtp_server() as (handler, port):
        SmtpSender(f"smtp://127.0.0.1:{port}").send(spec, FROM)
    (msg,) = handler.messages()
    calendar = list(msg.iter_attachments())[0]
    assert calendar.get_param("method") == "CANCEL" and "STATUS:CANCELLED" in calendar.get_content()


def test_smtp_down_is_transient_and_delivery_works_once_it_is_up(confirmation):
    port = free_port()
    sender = SmtpSender(f"smtp://127.0.0.1:{port}?timeout=2")
    with pytest.raises(TransientError) as info:
        sender.send(confirmation, FROM)
    assert info.value.code == "smtp_unreachable"
    with smtp_server(port) as (handler, _):
        sender.send(confirmation, FROM)
    assert len(handler.envelopes) == 1


def test_recipient_refusals_map_to_permanent_or_transient(confirmation):
    with smtp_server() as (handler, port):
        sender = SmtpSender(f"smtp://127.0.0.1:{port}")
        handler.refuse["sam@example.org"] = "550 5.1.1 No such user"
        with pytest.raises(PermanentError) as info:
            sender.send(confirmation, FROM)
        assert info.value.code == "smtp_recipient_refused"
        handler.refuse["sam@example.org"] = "451 4.3.0 Try again later"
        with pytest.raises(TransientError):
            sender.send(confirmation, FROM)
    assert handler.envelopes == []


def _authenticator(server, session, envelope, mechanism, auth_data):
    # handled=False: aiosmtpd answers a refusal with 535 itself.
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"mailer", b"p@ss word"), handled=False)


def test_login_with_user_and_password_from_the_url(confirmation):
    with smtp_server(authenticator=_authenticator, auth_require_tls=False) as (handler, port):
        SmtpSender(f"smtp://mailer:p%40ss%20word@127.0.0.1:{port}?timeout=5").send(confirmation, FROM)
        assert len(handler.envelopes) == 1
        with pytest.raises(TransientError) as info:
            SmtpSender(f"smtp://mailer:wrong@127.0.0.1:{port}?timeout=5").send(confirmation, FROM)
        assert info.value.code == "smtp_auth_failed"
        assert "wrong" not in info.value.message
    assert len(handler.envelopes) == 1


def test_starttls_when_the_server_offers_it(confirmation, tls_files):
    with smtp_server(tls_context=server_tls(tls_files), require_starttls=True) as (handler, port):
        # Opportunistic by default: the server requires it, so delivery proves it was used.
        SmtpSender(f"smtp://127.0.0.1:{port}?verify=0").send(confirmation, FROM)
        # Certificates are verified unless verify=0: a self-signed one is refused.
        with pytest.raises(TransientError) as info:
            SmtpSender(f"smtp://127.0.0.1:{port}?starttls=1&timeout=5").send(confirmation, FROM)
        assert "certificate" in info.value.message.lower()
    assert len(handler.envelopes) == 1


def test_required_starttls_missing_is_an_error(confirmation):
    with smtp_server() as (handler, port):
        with pytest.raises(TransientError) as info:
            SmtpSender(f"smtp://127.0.0.1:{port}?starttls=1").send(confirmation, FROM)
    assert info.value.code == "smtp_starttls_unavailable" and handler.envelopes == []


def test_smtps_with_tls_from_the_first_byte(confirmation, tls_files):
    with smtp_server(ssl_context=server_tls(tls_files)) as (handler, port):
        SmtpSender(f"smtps://127.0.0.1:{port}?verify=0&timeout=5").send(confirmation, FROM)
    assert len(handler.envelopes) == 1


def test_file_outbox_writes_one_eml_per_message_id(tmp_path, confirmation):
    outbox = tmp_path / "outbox"
    sender = FileOutboxSender(outbox)
    sender.send(confirmation, FROM)
    sender.send(confirmation, FROM)  # a redelivered send changes nothing
    sender.send(replace(confirmation, subject="changed"), FROM)
    files = sorted(p.name for p in outbox.iterdir())
    assert files == [sender.path_for(confirmation.message_id).name]
    assert files[0].endswith(".eml") and "<" not in files[0]
    msg = email.message_from_bytes((outbox / files[0]).read_bytes(), policy=email.policy.default)
    assert msg["Message-ID"].strip() == confirmation.message_id and msg["Subject"] == confirmation.subject
    owner = compose.booking_confirmed(sample_view())[1]
    sender.send(owner, FROM)
    assert len(list(outbox.glob("*.eml"))) == 2 and not list(outbox.glob(".*"))
    sender.check()


def test_build_sender_follows_the_settings(tmp_path):
    base = dict(var_dir=tmp_path, database_url="sqlite://", broker_url="memory://", secret_key="k")
    outbox = build_sender(Settings(**base))
    assert isinstance(outbox, FileOutboxSender) and outbox.outbox_dir == tmp_path / "outbox"
    smtp = build_sender(Settings(**base, smtp_url="smtps://u:secret@mail.example.com"))
    assert isinstance(smtp, SmtpSender) and (smtp.host, smtp.port, smtp.use_ssl) == ("mail.example.com", 465, True)
    assert "secret" not in repr(smtp)
