"""HTTP API keys: `sk_sp_<random>` shown once, stored as its SHA-256 (a key has 256 bits of
randomness, so a plain hash is as good as a slow one and costs nothing per request).

A key is scoped to booking pages (none listed: every page) and may be an admin key; only an
admin key may act as the booking page's administrator.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import select

from models import ApiKey, BookingPage

from .availability import to_utc_iso
from .errors import InvalidInput, NotFound

PREFIX = "sk_sp_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyPrincipal:
    """Who an authenticated request acts as."""

    name: str
    pages: tuple[str, ...]  # empty: every page
    admin: bool

    def covers(self, page: str | None) -> bool:
        return not self.pages or page in self.pages


def create_key(uow, name: str, pages: Sequence[str] = (), admin: bool = False, *, now) -> dict[str, Any]:
    """A new key; the returned dict holds the key itself, which is never stored nor shown again."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput("invalid_key_name", "a key name is 1 to 100 letters, digits or . _ - (e.g. 'web-frontend')")
    pages = sorted(set(pages or []))
    unknown = [p for p in pages if uow.db.get(BookingPage, p) is None]
    if unknown:
        raise InvalidInput("unknown_booking_page", f"unknown booking page(s): {', '.join(unknown)}; "
                                                   "`sessionpack config apply` creates pages")
    if uow.db.execute(select(ApiKey.id).where(ApiKey.name == name)).scalar() is not None:
        raise InvalidInput("key_name_taken", f"a key named {name!r} exists; revoke it or choose another name")
    key = PREFIX + secrets.token_urlsafe(32)
    uow.db.add(ApiKey(name=name, key_hash=key_hash(key), prefix=key[:12], pages=pages, admin=bool(admin),
                      created_at=now))
    uow.record("apikey.created", actor="admin", name=name, pages=pages, admin=bool(admin))
    return {"name": name, "key": key, "pages": pages, "admin": bool(admin)}


def describe(row: ApiKey) -> dict[str, Any]:
    return {"name": row.name, "prefix": row.prefix, "pages": list(row.pages or []), "admin": row.admin,
            "created": to_utc_iso(row.created_at),
            "revoked": to_utc_iso(row.revoked_at) if row.revoked_at else None,
            "last_used": to_utc_iso(row.last_used_at) if row.last_used_at else None}


def list_keys(db) -> list[dict[str, Any]]:
    return [describe(r) for r in db.execute(select(ApiKey).order_by(ApiKey.id)).scalars()]


def revoke_key(uow, name: str, *, now) -> dict[str, Any]:
    row = uow.db.execute(select(ApiKey).where(ApiKey.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound("unknown_key", f"no API key named {name!r}; `sessionpack apikey list` shows them")
    if row.revoked_at is None:
        row.revoked_at = now
        uow.record("apikey.revoked", actor="admin", name=name)
    return describe(row)


def authenticate(db, key: str | None) -> KeyPrincipal | None:
    """The principal of a presented key, or None (unknown, malformed or revoked)."""
    if not isinstance(key, str) or not key.startswith(PREFIX) or len(key) > 200:
        return None
    digest = key_hash(key)
    row = db.execute(select(ApiKey).where(ApiKey.key_hash == digest)).scalar_one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return KeyPrincipal(row.name, tuple(row.pages or ()), bool(row.admin))
