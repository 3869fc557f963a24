"""Delivering composed emails: the `EmailSender` interface, SMTP and the file outbox.

`build_email` turns a spec into a MIME message (multipart/alternative text + HTML, calendar files
attached); `email_bytes`, what the senders send, writes the same message as bytes directly
(services/notifications/mime.py: headers that are plain one-line ASCII as they are, every other
header through `email.headerregistry`). Names and subjects are collapsed to one line first, so
nothing a customer typed can add a header. Senders raise `TransientError` when trying again later
may work and `PermanentError` when it never will.
"""
from __future__ import annotations

import abc
import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from contextlib import contextmanager
from typing import Callable
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from services.errors import InvalidInput, PermanentError, TransientError

from . import mime
from .compose import EmailMessageSpec, valid_address
from .render import one_line


class EmailSender(abc.ABC):
    """Delivers one email. Idempotence across retries is the outbox's job, not the sender's.

    `clock` (the container's, set by `build_sender`) dates each message: its Date header.
    """

    clock: Callable[[], datetime] | None = None

    def _now(self) -> datetime | None:
        return self.clock() if self.clock is not None else None

    @abc.abstractmethod
    def send(self, spec: EmailMessageSpec, from_addr: str) -> None:
        """Deliver `spec` from `from_addr` ('Name <addr>' or a bare address)."""

    def check(self) -> None:
        """Raise TransientError when the backend cannot deliver right now (for `doctor`)."""


# -- the message ---------------------------------------------------------------------------------
class _CachedHeaderRegistry(HeaderRegistry):
    """The standard registry makes a new header class with `type()` on every header it sets
    (a message sets ~25, with its parts), which was a third of the time spent building one.
    The class for a name never changes, so it is made once."""

    def __init__(self):
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


# email.policy.default, headers through the registry above.
POLICY = email_policy.default.clone(header_factory=_CachedHeaderRegistry())


def _address(name: str, addr: str, who: str) -> Address:
    return Address(display_name=one_line(name or ""), addr_spec=valid_address(addr, who))


def sender_address(from_addr: str) -> Address:
    """'sessionpack <no-reply@example.com>' -> Address; InvalidInput when it holds no valid address.

    Checked for syntax only, not with email-validator: our own sender may well live on a
    special-use domain (the embedded default is no-reply@sessionpack.local).
    """
    name, addr = parseaddr(one_line(from_addr))
    try:
        if "@" not in addr:
            raise ValueError("no address")
        return Address(display_name=one_line(name), addr_spec=addr)
    except (ValueError, IndexError) as exc:
        raise InvalidInput("invalid_email", f"SMTP_FROM {from_addr!r} holds no valid address ({exc}); "
                           "write it like 'Bookings <bookings@example.com>'") from None


def _attach(msg: EmailMessage, attachment: dict) -> None:
    probe = EmailMessage(policy=POLICY)
    probe["Content-Type"] = attachment["content_type"]
    maintype, subtype = probe.get_content_maintype(), probe.get_content_subtype()
    # charset is chosen by the content manager; everything else (method=CANCEL for a calendar
    # file) is kept, because mail clients read it to offer "add to / remove from calendar".
    params = {k: v for k, v in probe["Content-Type"].params.items() if k != "charset"}
    content = attachment["content"]
    if maintype == "text":
        msg.add_attachment(content, subtype=subtype, filename=attachment["filename"], params=params)
    else:
        data = content.encode("utf-8") if isinstance(content, str) else content
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment["filename"],
                           params=params)


def _headers(spec: EmailMessageSpec, from_addr: str, now: datetime | None) -> list[tuple[str, object]]:
    headers: list[tuple[str, object]] = [("From", sender_address(from_addr)),
                                         ("To", _address(spec.to_name, spec.to_addr, "recipient"))]
    if spec.reply_to:
        headers.append(("Reply-To", _address("", spec.reply_to, "reply-to")))
    headers += [
        ("Subject", one_line(spec.subject)),
        ("Date", format_datetime((now or datetime.now(timezone.utc)).astimezone(timezone.utc))),
        ("Message-ID", one_line(spec.message_id)),
        # Tells auto-responders (vacation replies) not to answer a machine.
        ("Auto-Submitted", "auto-generated"),
        ("X-Sessionpack-Kind", one_line(spec.kind)),
    ]
    return headers


def build_email(spec: EmailMessageSpec, from_addr: str, *, now: datetime | None = None) -> EmailMessage:
    """The MIME message for a spec: multipart/alternative (text, HTML), inside multipart/mixed
    when there are attachments. Message-ID is the spec's deterministic id."""
    msg = EmailMessage(policy=POLICY)
    for name, value in _headers(spec, from_addr, now):
        msg[name] = value
    msg.set_content(spec.text)
    msg.add_alternative(spec.html, subtype="html")
    for attachment in spec.attachments:
        _attach(msg, attachment)
    return msg


def email_bytes(spec: EmailMessageSpec, from_addr: str, *, now: datetime | None = None,
                linesep: str = "\n") -> bytes:
    """The message `build_email` makes, as bytes, written directly (services.notifications.mime)
    when it has the notifications' shape, else by the email package. Both read back the same:
    headers, parts, parameters and contents (tests/unit/test_mime.py)."""
    headers = _headers(spec, from_addr, now)
    data = mime.message_bytes([mime.header(name, value, POLICY) for name, value in headers], spec.text, spec.html,
                              spec.attachments, POLICY, linesep=linesep)
    if data is None:
        data = build_email(spec, from_addr, now=now).as_bytes(policy=POLICY.clone(linesep=linesep))
    return data


# -- the file outbox -----------------------------------------------------------------------------
class FileOutboxSender(EmailSender):
    """Writes each email as `<outbox_dir>/<message id>.eml`: the embedded default, no server.

    Written to a hidden temp file and renamed into place, so a reader never sees half a message;
    a message id that is already there is not written again.
    """

    def __init__(self, outbox_dir: str | os.PathLike):
        self.outbox_dir = Path(outbox_dir)

    def path_for(self, message_id: str) -> Path:
        bare = message_id.strip().strip("<>")
        safe = re.sub(r"[^A-Za-z0-9._@-]", "_", bare)[:150]
        if safe != bare or not safe:
            safe = f"{safe}-{hashlib.sha256(message_id.encode()).hexdigest()[:16]}"
        return self.outbox_dir / f"{safe}.eml"

    def send(self, spec: EmailMessageSpec, from_addr: str) -> None:
        final = self.path_for(spec.message_id)
        if final.exists():
            return
        data = email_bytes(spec, from_addr, now=self._now())
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.outbox_dir, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientError("outbox_write_failed",
                                 f"cannot write {final} ({exc}); check that {self.outbox_dir} is writable") from exc

    def check(self) -> None:
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.outbox_dir, prefix=".check-"):
                pass
        except OSError as exc:
            raise TransientError("outbox_write_failed", f"the outbox {self.outbox_dir} is not writable ({exc})") from exc


# -- SMTP ----------------------------------------------------------------------------------------
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(query: dict, name: str) -> bool | None:
    value = (query.get(name) or [""])[-1].lower()
    return True if value in _TRUE else False if value in _FALSE else None


class SmtpSender(EmailSender):
    """SMTP delivery from an URL: `smtp://[user:pass@]host[:port][?starttls=1|0][&verify=0][&timeout=S]`
    or `smtps://...` (TLS from the first byte, port 465).

    On smtp:// STARTTLS is used whenever the server offers it; `starttls=1` makes it required,
    `starttls=0` never uses it. `verify=0` accepts any certificate (a local relay's self-signed one).
    One connection per email: simple, and nothing to go stale between outbox sweeps.
    """

    def __init__(self, smtp_url: str, *, timeout: float = 30.0):
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise InvalidInput("invalid_smtp_url",
                               "SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465")
        query = parse_qs(parts.query)
        self.use_ssl = parts.scheme == "smtps"
        self.starttls = None if self.use_ssl else _flag(query, "starttls")
        self.verify = _flag(query, "verify") is not False
        self.host = parts.hostname
        self.port = parts.port or (465 if self.use_ssl else 587 if self.starttls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else ""
        self.timeout = float((query.get("timeout") or [timeout])[-1])

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSender({'smtps' if self.use_ssl else 'smtp'}://{self.host}:{self.port})"

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            client.ehlo()
            if not self.use_ssl and self.starttls is not False:
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls())
                    client.ehlo()
                elif self.starttls:
                    raise TransientError("smtp_starttls_unavailable",
                                         f"{self.host}:{self.port} does not offer STARTTLS but SMTP_URL "
                                         "asks for it (starttls=1); use smtps:// or remove starttls=1")
            if self.username:
                client.login(self.username, self.password)
        except BaseException:
            client.close()
            raise
        return client

    @contextmanager
    def _errors(self):
        """SMTP and socket errors as TransientError / PermanentError with a useful message."""
        where = f"{self.host}:{self.port}"
        try:
            yield
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{rcpt}: {code} {msg.decode(errors='replace')}"
                             for rcpt, (code, msg) in exc.recipients.items())
            if codes and all(500 <= c < 600 for c in codes):
                raise PermanentError("smtp_recipient_refused", f"{where} refused the recipient ({text})") from exc
            raise TransientError("smtp_recipient_deferred", f"{where} deferred the recipient ({text})") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientError("smtp_auth_failed", f"{where} refused the login ({exc.smtp_code}); "
                                 "check the user and password in SMTP_URL") from exc
        except smtplib.SMTPDataError as exc:
            error = PermanentError if 500 <= exc.smtp_code < 600 else TransientError
            raise error("smtp_message_refused",
                        f"{where} refused the message: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPResponseException as exc:
            # Sender refused, HELO refused, 421 closing...: a server or configuration problem,
            # not this email's; retrying once it is fixed delivers it.
            raise TransientError("smtp_error", f"{where} answered {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError("smtp_unreachable", f"cannot talk to the mail server {where} ({exc}); "
                                 "check SMTP_URL and that the server is up") from exc

    def send(self, spec: EmailMessageSpec, from_addr: str) -> None:
        envelope_from = sender_address(from_addr).addr_spec
        to_addr = valid_address(spec.to_addr, "recipient")
        now = self._now()
        with self._errors():
            client = self._connect()
            try:
                if envelope_from.isascii() and to_addr.isascii():
                    client.sendmail(envelope_from, [to_addr], email_bytes(spec, from_addr, now=now, linesep="\r\n"))
                else:  # an internationalized address: the email package and SMTPUTF8
                    client.send_message(build_email(spec, from_addr, now=now), from_addr=envelope_from,
                                        to_addrs=[to_addr])
            finally:
                _quit(client)

    def check(self) -> None:
        with self._errors():
            client = self._connect()
            try:
                client.noop()
            finally:
                _quit(client)


def _quit(client: smtplib.SMTP) -> None:
    # The message is already accepted (or the error already raised): a failing QUIT changes nothing.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def build_sender(settings, clock: Callable[[], datetime] | None = None) -> EmailSender:
    """SMTP when `settings.smtp_url` is set, else the file outbox under `settings.outbox_dir`;
    `clock` (the container's) dates the messages, the wall clock when None."""
    sender = SmtpSender(settings.smtp_url) if settings.smtp_url else FileOutboxSender(settings.outbox_dir)
    sender.clock = clock
    return sender
