"""Owner logins: argon2 password hashes, the site-admin flag, and rate-limited sign-in.

Failed attempts are counted per (owner, client address), per client address and per owner (the
`limits` library: Redis when the broker is Redis, so every web process shares the count; memory
otherwise); see LoginLimiter for which count closes the door and which only slows it. Unknown
owners are counted and hashed against like known ones, so a guess learns nothing from the answer
or its timing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select

from models import Owner

from ..errors import InvalidInput, NotFound, OperationFailed

log = logging.getLogger("sessionpack.console.accounts")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# Failed sign-ins in a moving window. The lock is keyed by (owner, client address), never by the
# owner alone: a per-owner lock lets anyone lock the real owner out by failing on purpose. An
# attacker's failures close the door to their own address only; the owner, signing in from theirs,
# is not held up.
PER_PAIR_LIMIT = "5/15minutes"  # one address at one owner: then refused for a while
PER_ADDRESS_LIMIT = "20/15minutes"  # one address at any owners (guessing many): then refused
# A guess at one owner spread over many addresses (each under its pair limit) meets the owner's
# ceiling: past it every sign-in at that owner is answered only after OWNER_SLOWDOWN_SECONDS
# (awaited by the web process, holding no thread), right password or not. It slows and never
# refuses, so failures cannot be used to keep the owner out: they wait a few seconds and are in.
PER_OWNER_CEILING = "30/15minutes"
OWNER_SLOWDOWN_SECONDS = 3.0

_hasher = PasswordHasher()
# Verified against when the owner is unknown or has no password, so every answer costs the same.
_DUMMY_HASH = _hasher.hash("sessionpack-no-such-owner")


@dataclass(frozen=True)
class OwnerIdentity:
    """Who is signed in: what the console needs to scope and greet, nothing secret."""

    id: str
    name: str
    email: str
    timezone: str
    site_admin: bool
    # Changes with the password: a signed-in browser carries it, so a new password signs out
    # every other browser.
    stamp: str = ""
    # The owner's session generation when this browser signed in (Owner.session_generation):
    # signing out anywhere, or a new password, ends every session of an older generation.
    generation: int = 0


def password_stamp(password_hash: str | None) -> str:
    import hashlib

    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def identity(owner: Owner) -> OwnerIdentity:
    return OwnerIdentity(owner.id, owner.name, owner.email, owner.timezone, bool(owner.site_admin),
                         password_stamp(owner.password_hash), int(owner.session_generation or 0))


class TooManyAttempts(OperationFailed):
    """Sign-in refused without checking the password: too many recent failures."""

    def __init__(self, retry_after: int):
        minutes = max(1, (retry_after + 59) // 60)
        super().__init__("too_many_attempts",
                         f"too many failed sign-ins; wait {minutes} minute(s) and try again", retry_after=retry_after)
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("password_too_short",
                           f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("password_too_long", f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def set_password(c, owner_id: str, password: str, *, site_admin: bool | None = None) -> OwnerIdentity:
    """Set (or replace) an owner's console password; `site_admin` True/False changes the flag,
    None leaves it. Raises NotFound (`unknown_owner`) or InvalidInput (password rules)."""
    check_password_rules(password)
    with c.uow() as uow:
        owner = uow.db.get(Owner, owner_id)
        if owner is None:
            raise NotFound("unknown_owner", f"owner {owner_id!r} does not exist; owners come from `sessionpack config apply`")
        owner.password_hash = hash_password(password)
        owner.session_generation = int(owner.session_generation or 0) + 1  # every browser signs in again
        if site_admin is not None:
            owner.site_admin = site_admin
        uow.record("owner.password_set", actor="admin", owner=owner_id, site_admin=bool(owner.site_admin))
        uow.commit()
        return identity(owner)


def _find_owner(db, login: str) -> Owner | None:
    """By id, or by email when exactly one owner has it."""
    owner = db.get(Owner, login)
    if owner is not None:
        return owner
    rows = db.execute(select(Owner).where(func.lower(Owner.email) == login.lower()).limit(2)).scalars().all()
    return rows[0] if len(rows) == 1 else None


class LoginLimiter:
    """Counts failed sign-ins in moving windows: per (owner, address) and per address, which
    refuse when full, and per owner over every address, which only slows (see the limits above)."""

    _NS = "sessionpack-login"

    def __init__(self, storage_uri: str = "memory://", per_pair: str = PER_PAIR_LIMIT,
                 per_address: str = PER_ADDRESS_LIMIT, owner_ceiling: str = PER_OWNER_CEILING,
                 slowdown: float = OWNER_SLOWDOWN_SECONDS):
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.storage = storage_from_string(storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_pair, self.per_address = parse(per_pair), parse(per_address)
        self.owner_ceiling, self.slowdown = parse(owner_ceiling), slowdown

    @staticmethod
    def _owner(login: str) -> str:
        return login.strip().lower()

    def _closing(self, login: str, address: str):
        """The counts that refuse when full: (limit, key parts)."""
        address = address or "unknown"
        return ((self.per_pair, ("pair", self._owner(login), address)), (self.per_address, ("address", address)))

    # When the counters' store (Redis) cannot be reached, sign-in goes on without them (logged):
    # the password is still checked, and argon2 keeps each guess slow; refusing every owner
    # while Redis is down would be worse.

    def check(self, login: str, address: str) -> float:
        """Raise TooManyAttempts when this address's count at this owner, or its count at all
        owners, is full; else the seconds to wait before answering (0, or the slowdown when the
        owner's count over every address is past its ceiling)."""
        try:
            for limit, key in self._closing(login, address):
                if not self.limiter.test(limit, self._NS, *key):
                    reset_at, _remaining = self.limiter.get_window_stats(limit, self._NS, *key)
                    raise TooManyAttempts(max(1, int(reset_at - time.time())))
            over = not self.limiter.test(self.owner_ceiling, self._NS, "owner", self._owner(login))
        except TooManyAttempts:
            raise
        except Exception as exc:  # noqa: BLE001 - the store is down: see above
            log.warning("sign-in rate limit store unavailable: %s", exc)
            return 0.0
        return self.slowdown if over else 0.0

    def failed(self, login: str, address: str) -> None:
        try:
            for limit, key in self._closing(login, address):
                self.limiter.hit(limit, self._NS, *key)
            self.limiter.hit(self.owner_ceiling, self._NS, "owner", self._owner(login))
        except Exception as exc:  # noqa: BLE001
            log.warning("sign-in rate limit store unavailable: %s", exc)

    def succeeded(self, login: str, address: str) -> None:
        """A good password clears this address's count at this owner (not the address's own
        count: one good account must not reopen the door for guesses at others; nor the
        owner's ceiling, which only slows)."""
        limit, key = self._closing(login, address)[0]
        try:
            self.limiter.clear(limit, self._NS, *key)
        except Exception as exc:  # noqa: BLE001
            log.warning("sign-in rate limit store unavailable: %s", exc)


def limiter_storage_uri(settings) -> str:
    """Redis when the broker is Redis (shared by every web process), memory otherwise."""
    broker = settings.broker_url or ""
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return "memory://"


def authenticate(c, limiter: LoginLimiter, login: str, password: str, address: str, *,
                 pause: Callable[[float], object] = time.sleep) -> OwnerIdentity:
    """The owner when the password is right. Raises TooManyAttempts (checked first, the password
    is not even looked at) or OperationFailed `invalid_login` (the same for an unknown owner, an
    owner without a password and a wrong password). Past the owner's ceiling `pause(seconds)` is
    called first; the web process passes its own, which it awaits before answering."""
    login = (login or "").strip()[:320]
    password = password or ""
    delay = limiter.check(login, address)
    if delay:
        pause(delay)
    with c.session_factory() as db:
        owner = _find_owner(db, login) if login else None
        stored = owner.password_hash if owner is not None else None
        ok = False
        try:
            ok = _hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH]) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            limiter.failed(login, address)
            log.info("owner sign-in refused", extra={"client": address})
            raise OperationFailed("invalid_login", "the owner or the password is wrong")
        if _hasher.check_needs_rehash(stored):
            with c.uow() as uow:
                uow.db.get(Owner, owner.id).password_hash = hash_password(password)
                uow.commit()
        limiter.succeeded(login, address)
        return identity(owner)


def load_identity(c, owner_id: str, stamp: str, generation: int | None = None) -> OwnerIdentity | None:
    """The signed-in owner as they are now; None when the owner is gone, their password has
    changed since `stamp` was issued, or the cookie's session `generation` is not the owner's
    current one (they signed out, or set a new password, since): that browser's session is over."""
    with c.read() as db:
        owner = db.get(Owner, owner_id) if isinstance(owner_id, str) else None
        if owner is None or not owner.password_hash or password_stamp(owner.password_hash) != stamp:
            return None
        if type(generation) is not int or generation != int(owner.session_generation or 0):
            return None
        return identity(owner)


def end_sessions(c, owner_id: str) -> None:
    """Sign the owner out on the server: every cookie issued so far (this browser's, a copy of
    it, other browsers') stops working. Recorded in the activity stream."""
    from sqlalchemy import update

    with c.uow() as uow:
        done = uow.db.execute(update(Owner).where(Owner.id == owner_id).values(
            session_generation=Owner.session_generation + 1))
        if done.rowcount:
            uow.record("owner.signed_out", actor=f"owner:{owner_id}"[:64], owner=owner_id)
        uow.commit()
