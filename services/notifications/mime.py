"""An email's MIME bytes written directly, for the one shape every notification has.

Every notification is the same shape: a few headers, multipart/alternative (text, HTML), and
inside multipart/mixed with it the calendar files. Building that through `email.message` parses
every header it sets back into a tree, refolds it on output and encodes the bodies in pure Python
(two messages were ~8 ms of CPU per booking). Here the skeleton is written as text: a header
whose value is printable ASCII, fits on one line and needs no quoting is written as it is, which
is what the email package writes for it too; any other header (a non-ASCII subject, a name that
needs quotes, a long line) goes through the email package's header registry, as before. Bodies
get the encoding the email package picks for them (7bit or 8bit when their lines are short, else
quoted-printable or base64, whichever is shorter on the first lines), done with `binascii`.
A message outside this shape (an attachment that is not text, an address that is not ASCII)
returns None and the caller builds it with the email package.
"""
from __future__ import annotations

import binascii
import random
import re
import sys
from functools import lru_cache

from email.headerregistry import Address

# A header value written as it is: printable ASCII, no encoded-word look-alike ("=?"), which the
# email package would decode on the way in.
_PLAIN = re.compile(r"[\x20-\x7e]*\Z")
# A display name the email package writes without quotes (no RFC 5322 specials) and an address
# it writes unchanged.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*\Z")
_PLAIN_ADDR = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\Z")
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9._-]+\Z")
MAX_LINE = 78  # the email package's policy.max_line_length


def header(name: str, value, policy) -> str:
    """'Name: value\\n', as the email package folds it: written directly when it is plain, else
    through `policy`'s header registry (encoded words, quoting, folding)."""
    if isinstance(value, Address):
        text = _plain_address(value)
        if text is not None and len(name) + 2 + len(text) <= MAX_LINE:
            return f"{name}: {text}\n"
    elif value and len(name) + 2 + len(value) <= MAX_LINE and _PLAIN.match(value) and "=?" not in value and value == value.strip():
        return f"{name}: {value}\n"
    return policy.header_factory(name, value).fold(policy=policy)


def _plain_address(address: Address) -> str | None:
    name, addr = address.display_name, address.addr_spec
    if not _PLAIN_ADDR.match(addr) or not _PLAIN_NAME.match(name) or name != name.strip() or "  " in name:
        return None
    return f"{name} <{addr}>" if name else addr


def _encode(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body) for a UTF-8 text part, chosen as the email package's
    content manager chooses (email.contentmanager._encode_text), lines ending in \\n."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        body = b"\n".join(lines) + b"\n"
        return ("7bit" if body.isascii() else "8bit"), body
    body = b"\n".join(lines) + b"\n"
    sniff = b"\n".join(lines[:10]) + b"\n"
    if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
        return "base64", b"".join(binascii.b2a_base64(body[i:i + 57]) for i in range(0, len(body), 57))
    return "quoted-printable", binascii.b2a_qp(body, istext=True)


@lru_cache(maxsize=64)
def _content_type(content_type: str, policy) -> str | None:
    """An attachment's Content-Type as the email package writes it ('text/calendar;
    charset="utf-8"; method="PUBLISH"'), parsed once per type; None when it is not text or has a
    parameter that would need encoding (not a shape written here)."""
    parsed = policy.header_factory("Content-Type", content_type)
    params = [(k, v) for k, v in parsed.params.items() if k != "charset"]
    if parsed.maintype != "text" or not all(_PLAIN_FILENAME.match(k) and _PLAIN_FILENAME.match(v) for k, v in params):
        return None
    return f'text/{parsed.subtype}; charset="utf-8"' + "".join(f'; {k}="{v}"' for k, v in params)


def _boundary(parts: list[bytes]) -> bytes:
    """A boundary like the email package's that appears in none of the parts."""
    while True:
        boundary = b"===============%019d==" % random.randrange(sys.maxsize)
        if not any(boundary in part for part in parts):
            return boundary


def _multipart(subtype: str, parts: list[bytes]) -> tuple[str, bytes]:
    boundary = _boundary(parts)
    body = b"--" + boundary + b"\n" + (b"\n--" + boundary + b"\n").join(parts) + b"\n--" + boundary + b"--\n"
    content_type = f'Content-Type: multipart/{subtype}; boundary="{boundary.decode()}"'
    if len(content_type) > MAX_LINE:
        content_type = f'Content-Type: multipart/{subtype};\n boundary="{boundary.decode()}"'
    return content_type + "\n", body


def _text_part(content_type: str, text: str, extra: str = "") -> bytes:
    cte, body = _encode(text)
    return f"Content-Type: {content_type}\n{extra}Content-Transfer-Encoding: {cte}\n\n".encode() + body


def message_bytes(headers: list[str], text: str, html: str, attachments: list[dict], policy,
                  *, linesep: str = "\n") -> bytes | None:
    """The message: `headers` (each 'Name: value\\n', from `header`), then multipart/alternative
    of `text` and `html`, inside multipart/mixed with `attachments` when there are any. None when
    an attachment is not of this shape (not text, or a file name that needs encoding)."""
    alternative = [_text_part('text/plain; charset="utf-8"', text), _text_part('text/html; charset="utf-8"', html)]
    head, body = _multipart("alternative", alternative)
    if attachments:
        parts = [head.encode() + b"\n" + body]
        for attachment in attachments:
            content_type = _content_type(attachment["content_type"], policy)
            content = attachment["content"]
            if content_type is None or not isinstance(content, str) or not _PLAIN_FILENAME.match(
                    attachment["filename"]):
                return None
            disposition = f'Content-Disposition: attachment; filename="{attachment["filename"]}"\n'
            parts.append(_text_part(content_type, content, disposition))
        head, body = _multipart("mixed", parts)
    try:
        data = ("".join(headers) + "MIME-Version: 1.0\n" + head + "\n").encode("ascii") + body
    except UnicodeEncodeError:  # an address the email package writes in UTF-8 (SMTPUTF8)
        return None
    return data if linesep == "\n" else data.replace(b"\n", linesep.encode())
