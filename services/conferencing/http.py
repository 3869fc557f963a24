"""The HTTP layer the conferencing adapters share: one `requests.Session` per adapter instance,
timeouts from settings, and one retry policy for every provider.

The policy, in the order a response is judged:
- 2xx: done. A DELETE answered 404 is done too (the meeting is already gone), which makes
  compensation idempotent.
- 401: the token source refreshes once and the request is sent once more; a second 401 fails.
- 429: wait `Retry-After` seconds (or back off when it is missing), bounded by the attempts.
- 5xx, connection errors, timeouts: back off exponentially with jitter, bounded.
- any other 4xx: `PermanentError` at once, carrying the provider's own message.
When the attempts run out the last failure is raised as `TransientError`, so the Celery task
decides whether to try again later.
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from services.errors import PermanentError, TransientError

from .base import ConferencingProvider

log = logging.getLogger("sessionpack.conferencing.http")

# Methods that may be sent twice without a second effect. A POST that may have reached the
# server (read timeout, dropped connection) is not resent: the meeting may exist already, and
# the task's `find()` before its retry is what recovers it without making a second one.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one call retries. The defaults suit a worker; tests shrink them."""

    attempts: int = 4  # sends in all, the first included (a 401 refresh is not counted)
    base_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 8.0
    # A Retry-After longer than this is not slept through: the worker would sit idle, so the
    # TransientError carries it and the task schedules its own retry that much later.
    max_retry_after: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings) -> "RetryPolicy":
        """The default policy, overridden by `settings.extra["http_retry"]` (a dict of fields)."""
        overrides = (getattr(settings, "extra", None) or {}).get("http_retry") or {}
        tunable = {"attempts", "base_delay", "max_delay", "max_retry_after"}
        return cls(**{k: v for k, v in overrides.items() if k in tunable})

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based): exponential, capped, with equal jitter
        so that parallel workers hit by the same outage do not all come back at once."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now() if now else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


_MESSAGE_KEYS = ("message", "msg", "reason", "error_description", "description", "error")


def provider_message(response: requests.Response) -> str:
    """The provider's own explanation from an error body, whatever its shape: Zoom
    `{"code", "message"}`, Webex `{"message", "errors": [{"description"}]}`, GoTo `{"int_err_code",
    "msg"}`, OAuth `{"error", "reason"}`. Falls back to the start of the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        parts = [str(body[k]) for k in _MESSAGE_KEYS if isinstance(body.get(k), (str, int)) and body.get(k) != ""]
        details = [e.get("description") for e in body.get("errors") or [] if isinstance(e, dict) and e.get("description")]
        parts += [d for d in details if d not in parts]
        if parts:
            return "; ".join(dict.fromkeys(parts))
    text = (response.text or "").strip()
    return text[:300] if text else f"HTTP {response.status_code} with an empty body"


class TokenSource(Protocol):
    """Where an adapter's bearer token comes from."""

    def token(self) -> str:
        """A token believed valid now."""

    def refresh(self, stale: str) -> str:
        """A token to replace `stale`, which the provider just refused with 401."""


class StaticToken:
    """A configured token (Webex, GoTo). There is nothing to refresh; sending once more still
    rides out a spurious 401 from a provider's edge, and a token really revoked fails next time."""

    def __init__(self, value: str):
        self._value = value

    def token(self) -> str:
        return self._value

    def refresh(self, stale: str) -> str:
        return self._value


class ExpiringToken:
    """A token fetched on demand and cached until shortly before it expires (OAuth access tokens).

    `fetch()` returns (token, lifetime seconds). The lock makes parallel creates share one fetch,
    and `refresh(stale)` only fetches when no other thread has replaced the stale token already.
    """

    def __init__(self, fetch: Callable[[], tuple[str, float]], *, margin: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._value is None or self._clock() >= self._expires_at:
                self._renew()
            return self._value  # type: ignore[return-value]

    def refresh(self, stale: str) -> str:
        with self._lock:
            if self._value in (None, stale):
                self._renew()
            return self._value  # type: ignore[return-value]

    def renew(self) -> str:
        """Fetch a new token now, whatever the cache holds (for credential checks)."""
        with self._lock:
            self._renew()
            return self._value  # type: ignore[return-value]

    def _renew(self) -> None:
        value, lifetime = self._fetch()
        self._value = value
        # Renew a little early so a token does not expire between our check and the provider's.
        self._expires_at = self._clock() + max(0.0, float(lifetime) - self._margin)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably did not reach the server, so even a POST may be resent."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class ApiClient:
    """One provider's REST API: a base URL, a session, its auth, timeout and retry policy.

    `label` names the provider in messages ("Zoom"); `code` prefixes error codes ("zoom");
    `credentials_hint` tells the operator what to fix after a refused token or a bad URL.
    """

    def __init__(self, *, code: str, label: str, base_url: str, timeout: float,
                 retry: RetryPolicy | None = None, token: TokenSource | None = None,
                 session: requests.Session | None = None, credentials_hint: str = ""):
        self.code = code
        self.label = label
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.token = token
        self.session = session or new_session()
        self.credentials_hint = credentials_hint

    def call(self, method: str, path: str = "", *, json: Any = None, params: Mapping[str, Any] | None = None,
             auth: tuple[str, str] | None = None, idempotent: bool | None = None) -> Any:
        """Send one request under the retry policy and return its JSON body (None when empty or
        when a DELETE found nothing to delete). Raises TransientError or PermanentError.

        `idempotent` says whether a request that may have reached the server can be sent again;
        by default only for methods other than POST."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        response = self._send_with_retries(method, path, idempotent, json=json, params=params, auth=auth)
        if response is None or response.status_code == 204 or not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise self.malformed(method, path, f"the body is not JSON: {response.text[:120]!r}") from None

    def malformed(self, method: str, path: str, why: str) -> TransientError:
        """The error for a success answer we cannot read. Transient: a proxy page or a provider
        hiccup passes, and the task's find() recovers a meeting the answer failed to describe."""
        return TransientError(
            f"{self.code}_malformed_response",
            f"{self.label} answered {method} {path or '/'} with a body we cannot use ({why}). "
            f"If this persists, check that the base URL points at the {self.label} API.",
        )

    def require(self, payload: Any, keys: tuple[str, ...], method: str, path: str) -> dict:
        """`payload` as a dict holding every key in `keys`, or the malformed-response error."""
        if not isinstance(payload, dict):
            raise self.malformed(method, path, f"expected a JSON object, got {type(payload).__name__}")
        missing = [k for k in keys if payload.get(k) in (None, "")]
        if missing:
            raise self.malformed(method, path, f"missing {', '.join(missing)}")
        return payload

    # -- the retry loop ---------------------------------------------------------------------------
    def _send_with_retries(self, method: str, path: str, idempotent: bool, **kwargs) -> requests.Response | None:
        policy = self.retry
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            token = self.token.token() if self.token else None
            try:
                response = self._send(method, path, token, **kwargs)
            except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                    requests.exceptions.InvalidURL) as exc:
                raise PermanentError(
                    f"{self.code}_bad_config",
                    f"The {self.label} URL {self.base_url!r} is not usable ({exc}). "
                    f"Fix {self.credentials_hint or 'the base URL'}.",
                ) from exc
            except requests.RequestException as exc:
                failure = self._network_failure(method, path, exc)
                if not idempotent and not _never_sent(exc):
                    raise failure from exc
                delay = policy.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status == 404 and method == "DELETE":
                    return None  # already gone: what the caller wanted
                if status == 401 and self.token is not None and not refreshed:
                    refreshed = True
                    attempt -= 1  # a refresh is not a retry of a failing provider
                    self.token.refresh(token or "")
                    log.info("%s refused the token on %s %s; refreshed it", self.label, method, path)
                    continue
                failure, delay = self._answer_failure(method, path, response, attempt)
            if attempt >= policy.attempts:
                raise failure
            log.warning("%s %s %s failed (%s); retry %d in %.2fs", self.label, method, path, failure.code, attempt, delay)
            policy.sleep(delay)

    def _answer_failure(self, method: str, path: str, response: requests.Response,
                        attempt: int) -> tuple[TransientError, float]:
        """For an error answer worth retrying (429, 5xx): the error and how long to wait first.
        Raises at once what is not worth retrying here."""
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            failure = TransientError(
                f"{self.code}_rate_limited",
                f"{self.label} is rate limiting us ({provider_message(response)}); try again later.",
                retry_after=retry_after,
            )
            if retry_after is None:
                return failure, self.retry.backoff(attempt)
            if retry_after > self.retry.max_retry_after:
                raise failure
            return failure, retry_after
        if status >= 500:
            return TransientError(
                f"{self.code}_unavailable",
                f"{self.label} failed on {method} {path or '/'} (HTTP {status}: {provider_message(response)}); "
                "it is usually temporary.",
                status=status,
            ), self.retry.backoff(attempt)
        raise self._refusal(method, path, response)

    def _send(self, method: str, path: str, token: str | None, *, json, params, auth) -> requests.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(
            method, self.base_url + path, headers=headers, json=json, params=params, auth=auth,
            timeout=self.timeout, allow_redirects=False,
        )

    def _network_failure(self, method: str, path: str, exc: requests.RequestException) -> TransientError:
        if isinstance(exc, requests.Timeout):
            what, code = f"did not answer within {self.timeout:g}s", "timeout"
        else:
            what, code = f"could not be reached ({type(exc).__name__})", "unreachable"
        return TransientError(f"{self.code}_{code}",
                              f"{self.label} {what} on {method} {path or '/'}; it is usually temporary.")

    def _refusal(self, method: str, path: str, response: requests.Response) -> PermanentError:
        status = response.status_code
        message = provider_message(response)
        if status == 401:
            return PermanentError(
                f"{self.code}_unauthorized",
                f"{self.label} refused our credentials (HTTP 401: {message}). "
                f"Check {self.credentials_hint or 'the credentials'}.",
                status=status,
            )
        kind = {403: "forbidden", 404: "not_found"}.get(status, "rejected")
        return PermanentError(
            f"{self.code}_{kind}",
            f"{self.label} refused {method} {path or '/'} (HTTP {status}): {message}",
            status=status,
        )


class RestMeetingsProvider(ConferencingProvider):
    """What the REST adapters share: an `ApiClient` in `_api`, and meetings addressed as
    /meetings/{id} that a DELETE removes (a 404 counts as removed, so cancelling is idempotent)."""

    _api: ApiClient

    @staticmethod
    def meeting_path(external_id: str) -> str:
        return f"/meetings/{quote(external_id, safe='')}"

    def delete(self, external_id: str) -> None:
        self._api.call("DELETE", self.meeting_path(external_id))


def new_session(pool_size: int = 16) -> requests.Session:
    """A session whose pool fits the parallel creates of one package, so connections are reused."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "sessionpack/0.1 (+conferencing)"
    return session


# -- small helpers the adapters' request bodies share ------------------------------------------

def utc_iso(moment: datetime) -> str:
    """`2026-12-07T14:00:00Z`. A naive datetime is taken as UTC, which is how the database keeps it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_tag(session_id: str) -> str:
    """The marker written into a meeting's agenda so `find()` can recognise our meeting later."""
    return f"[sessionpack:{session_id}]"


_TAG = re.compile(r"\[sessionpack:([^\]\s]+)\]")


def tagged_sessions(*texts: str | None) -> set[str]:
    """The session ids whose `session_tag` appears in any of the texts (a meeting's agenda, topic)."""
    return {match for text in texts if text for match in _TAG.findall(text)}


def tagged_agenda(topic: str, session_id: str) -> str:
    return f"{topic}\n\nRef: {session_tag(session_id)}"

