"""Outgoing webhooks: every outcome a booking page subscribed to, as a signed POST to its endpoint.

Events are not emitted by the code that makes a change. They are derived, in `emit_recorded`,
from the activity entries that a unit of work recorded, just before it commits: the activity
stream already names every outcome, so one function (and one mapping below) turns them into
events, and each event's rows are written in the same transaction as the change itself. A
rolled-back change therefore sends nothing, and a committed one is never lost.

Delivery (`deliver`) claims due rows, POSTs the exact stored body with a fresh signature
(`Sessionpack-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), and on failure tries
again after growing waits until the event is `GIVE_UP_AFTER` old; then the row is `failed`
(shown by `doctor`, listed and redeliverable with `sessionpack webhooks`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import time
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select

from models import Booking, BookingPage, WebhookDelivery

from .availability import to_utc_iso
from .errors import InvalidInput
from .outbox_claim import claim_and_send

log = logging.getLogger("sessionpack.webhooks")

DELIVER_TASK = "sessionpack.deliver_webhooks"
SIGNATURE_HEADER = "Sessionpack-Signature"
EVENT_TYPES = (
    "booking.confirmed", "booking.failed", "booking.awaiting_approval", "booking.declined",
    "booking.cancelled", "session.cancelled", "session.rescheduled", "refund.issued", "request.refused",
)
# Activity action -> event type. `<kind>.refused` entries of a refused change (cancel, reschedule,
# refund, approve, decline...) are refusals too: see `_event_types_of`.
ACTION_EVENTS = {
    "booking.confirmed": "booking.confirmed",
    "booking.failed": "booking.failed",
    "booking.awaiting_approval": "booking.awaiting_approval",
    "booking.declined": "booking.declined",
    "booking.cancelled": "booking.cancelled",
    "booking.withdrawn": "booking.cancelled",  # a request awaiting approval, withdrawn: cancelled
    "session.cancelled": "session.cancelled",
    "session.rescheduled": "session.rescheduled",
    "refund.succeeded": "refund.issued",
    "request.refused": "request.refused",
}
GIVE_UP_AFTER = timedelta(days=3)
MAX_WAIT_SECONDS = 6 * 3600
DELIVERY_CHUNK = 20
TIMEOUT = (5.0, 10.0)  # connect, read
USER_AGENT = "sessionpack-webhooks/1"


# -- the configuration ----------------------------------------------------------------------------


# Environment variables that hold sessionpack's own secrets (a receiver of webhooks signed with one
# would hold it): never a webhook's signing secret.
PROCESS_SECRETS = frozenset({"SECRET_KEY", "DATABASE_URL", "BROKER_URL", "FLOWER_BASIC_AUTH"})


def url_problem(url: Any) -> str | None:
    """Why a webhook URL is refused, or None. Events carry customers' names, emails and meeting
    details, so they travel over https only; plain http is allowed to a loopback host alone
    (localhost, 127.0.0.0/8, ::1: a receiver on the same machine, tests, local development)."""
    import ipaddress
    from urllib.parse import urlsplit

    if not isinstance(url, str) or len(url) > 2000:
        return "must be an https URL (up to 2000 characters)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "must be an https URL such as 'https://frontend.example.com/hooks/sessionpack'"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https URL such as 'https://frontend.example.com/hooks/sessionpack'"
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host.lower() == "localhost"
        if not loopback:
            return ("must use https (events carry customers' names, emails and meeting details); "
                    f"change it to 'https://{url[len('http://'):]}' and serve the endpoint over TLS "
                    "(plain http is allowed only to localhost, 127.0.0.1 or [::1])")
    return None


def check_endpoints(endpoints: Any, where: str) -> list[str]:
    """Problems with a page's `webhooks` list (for `config apply`), each naming the setting."""
    problems: list[str] = []
    if endpoints is None:
        return problems
    if not isinstance(endpoints, list):
        return [f"{where}.webhooks must be a list of {{url, secret_env, events}}"]
    for i, ep in enumerate(endpoints):
        at = f"{where}.webhooks[{i}]"
        if not isinstance(ep, dict):
            problems.append(f"{at} must be an object with url, secret_env and events")
            continue
        unknown = sorted(set(ep) - {"url", "secret_env", "events"})
        if unknown:
            problems.append(f"{at}: unknown setting(s) {', '.join(unknown)}; use url, secret_env and events")
        url = ep.get("url")
        problem = url_problem(url)
        if problem is not None:
            shown = url if isinstance(url, str) and len(url) <= 200 else type(url).__name__
            problems.append(f"{at}.url {problem}, not {shown!r}")
        env = ep.get("secret_env")
        if not isinstance(env, str) or not env or not (env[0].isalpha() or env[0] == "_") \
                or not all(ch.isalnum() or ch == "_" for ch in env) or len(env) > 200:
            problems.append(f"{at}.secret_env must name an environment variable (like 'DANA_WEBHOOK_SECRET'), "
                            f"not {env!r}")
        elif env.upper() in PROCESS_SECRETS or env.upper().startswith(("STRIPE_", "ZOOM_", "WEBEX_", "GOTO_", "SMTP_")):
            # The receiver must hold the signing secret: it would then hold one of ours.
            problems.append(f"{at}.secret_env names {env}, one of sessionpack's own secrets; give the endpoint a "
                            "secret of its own (like 'DANA_WEBHOOK_SECRET')")
        events = ep.get("events")
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            problems.append(f"{at}.events must list one or more of: {', '.join(EVENT_TYPES)}")
            continue
        for event in events:
            if event not in EVENT_TYPES:
                problems.append(f"{at}.events: unknown event type {event!r}; use one of: {', '.join(EVENT_TYPES)}")
    return problems


# -- signing -------------------------------------------------------------------------------------


def sign(secret: str, body: str | bytes, timestamp: int | None = None) -> str:
    """The `Sessionpack-Signature` header value for a body."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    payload = body.encode("utf-8") if isinstance(body, str) else body
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: str | bytes, header: str, tolerance: float | None = 300, now: float | None = None) -> bool:
    """Whether a `Sessionpack-Signature` header is valid for the body (what a receiver does)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for k, v in
               (item.split("=", 1) for item in header.split(",")) if k == "v1")


# -- emitting (inside the deciding transaction) ---------------------------------------------------


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def _event_types_of(action: str, details: dict) -> list[str]:
    if action in ACTION_EVENTS:
        types = [ACTION_EVENTS[action]]
        if action == "booking.failed" and details.get("step") == "validate":
            types.append("request.refused")  # the queued request itself was refused
        return types
    if action.endswith(".refused") and action != "request.refused":
        return ["request.refused"]
    return []


def _refusal(entry: tuple, booking: Booking | None) -> dict[str, Any]:
    action, booking_id, session_id, details = entry
    error = details.get("error") if isinstance(details.get("error"), dict) else None
    error = error or {"code": details.get("code"), "message": details.get("message")}
    request_id = details.get("request_id") or details.get("change")
    if request_id is None and booking is not None and action == "booking.failed":
        from .booking.ids import public_request_id

        request_id = public_request_id(booking.request_id)
    kind = action.rsplit(".", 1)[0]
    return {
        "request_id": request_id,
        "task": details.get("task") or {"booking": "sessionpack.submit_booking"}.get(kind, kind),
        "booking_id": booking_id, "session_id": session_id,
        "error": {"code": error.get("code"), "message": error.get("message")},
    }


def emit_recorded(uow, settings, entries: Iterable[tuple], now: datetime) -> list[int]:
    """Write the webhook rows of the activity entries recorded in this unit of work (called just
    before it commits) for the endpoints subscribed to them, and ask for their delivery after
    commit. `entries` are (action, booking_id, session_id, details). Returns the new row ids."""
    from .booking.views import booking_object

    wanted = [(e, types) for e in entries if (types := _event_types_of(e[0], e[3] or {}))]
    if not wanted:
        return []
    db = uow.db
    endpoints_of: dict[str, list[dict]] = {}
    objects: dict[str, dict] = {}
    rows: list[WebhookDelivery] = []
    seen_refusals: set[tuple] = set()
    created = to_utc_iso(now)
    for entry, types in wanted:
        action, booking_id, session_id, details = entry
        details = details or {}
        booking = db.get(Booking, booking_id) if booking_id else None
        page = booking.page_slug if booking is not None else details.get("booking_page")
        if not isinstance(page, str) or not page:
            continue
        if page not in endpoints_of:
            page_row = db.get(BookingPage, page)
            endpoints_of[page] = list(page_row.webhooks or []) if page_row is not None else []
        endpoints = endpoints_of[page]
        if not endpoints:
            continue
        for event_type in types:
            targets = [ep for ep in endpoints if event_type in (ep.get("events") or [])]
            if not targets:
                continue
            if event_type == "request.refused":
                data = _refusal(entry, booking)
                key = (data["request_id"], data["booking_id"], data["error"]["code"])
                if key in seen_refusals:
                    continue  # one refusal recorded under two names (e.g. cancel.refused and request.refused)
                seen_refusals.add(key)
            else:
                if booking is None:
                    continue
                if booking_id not in objects:
                    db.flush()
                    # The endpoints are the owner's (configured on the booking page): no manage links.
                    objects[booking_id] = booking_object(db, booking, settings, for_owner=True)
                data = dict(objects[booking_id])
                if event_type.startswith("session."):
                    data["session_id"] = session_id
                if event_type == "refund.issued":
                    data["refund"] = {"id": details.get("refund"), "amount": details.get("amount"),
                                      "currency": details.get("currency"), "session_id": session_id}
            event_id = new_event_id()
            body = json.dumps({"id": event_id, "type": event_type, "created": created, "data": data},
                              separators=(",", ":"), default=str)
            for ep in targets:
                rows.append(WebhookDelivery(
                    event_id=event_id, event_type=event_type, page_slug=page, booking_id=booking_id,
                    url=ep["url"], secret_env=ep["secret_env"], body=body, status="pending",
                    created_at=now, next_attempt_at=now,
                ))
    if not rows:
        return []
    db.add_all(rows)
    db.flush()
    ids = [r.id for r in rows]
    # `booking_ids` is only for the eye (Flower's task list shows each task's booking).
    uow.enqueue(DELIVER_TASK, ids=ids, booking_ids=sorted({r.booking_id for r in rows if r.booking_id}) or None)
    return ids


# -- delivering (the worker) -----------------------------------------------------------------------


def next_wait(attempts: int, base: float = 30.0) -> float:
    """Seconds before the next try after `attempts` failed ones: `base` doubling to 6 h, jittered."""
    return min(MAX_WAIT_SECONDS, base * 2 ** max(0, attempts - 1)) * (0.8 + 0.4 * random.random())


def _post(row: WebhookDelivery, secret: str) -> None:
    """POST one event; raises on anything but a 2xx answer."""
    import requests

    problem = url_problem(row.url)  # an endpoint stored before https was required is not sent in clear
    if problem is not None:
        raise RuntimeError(f"the endpoint's url {problem}; fix it in the configuration file and "
                           "`sessionpack config apply`")
    body = row.body.encode("utf-8")
    resp = requests.post(row.url, data=body, timeout=TIMEOUT, allow_redirects=False, headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body), "Sessionpack-Event-Id": row.event_id,
    })
    if not 200 <= resp.status_code < 300:
        raise RuntimeError(f"{row.url} answered HTTP {resp.status_code}")


def deliver(container, ids: list[int] | None = None, *, limit: int = 200,
            stale_after: timedelta = timedelta(minutes=10), post=None) -> dict[str, int]:
    """Send due rows (the given ids, or every due one). Returns counts by outcome."""
    post = post or _post
    counts = {"delivered": 0, "retry": 0, "failed": 0}
    claim_and_send(container, WebhookDelivery, lambda row, now: _send_one(container, row, counts, post),
                   ids=ids, limit=limit, chunk_size=DELIVERY_CHUNK, stale_after=stale_after)
    return counts


def _send_one(container, row: WebhookDelivery, counts: dict[str, int], post) -> None:
    secret = os.environ.get(row.secret_env)
    try:
        if not secret:
            raise RuntimeError(f"the signing secret's environment variable {row.secret_env} is not set in the worker")
        post(row, secret)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        now = container.clock()
        row.last_error = str(exc)[:2000]
        if now - row.created_at >= GIVE_UP_AFTER:
            row.status = "failed"
            counts["failed"] += 1
            log.error("webhook %s %s to %s given up after %s attempts: %s",
                      row.event_type, row.event_id, row.url, row.attempts, exc)
        else:
            row.status = "pending"
            base = getattr(container.settings, "webhook_retry_seconds", None) or 30.0
            row.next_attempt_at = now + timedelta(seconds=next_wait(row.attempts, base))
            counts["retry"] += 1
            log.warning("webhook %s %s to %s not delivered (attempt %s): %s",
                        row.event_type, row.event_id, row.url, row.attempts, exc)
    else:
        row.status, row.delivered_at, row.last_error = "delivered", container.clock(), None
        counts["delivered"] += 1


# -- operators: doctor, list, redeliver -------------------------------------------------------------


def backlog(db, now: datetime) -> dict[str, int]:
    """For `doctor`: rows waiting, rows waiting for more than an hour, rows given up."""
    waiting = (WebhookDelivery.status.in_(("pending", "sending")))
    pending = db.query(WebhookDelivery).filter(waiting).count()
    overdue = db.query(WebhookDelivery).filter(waiting, WebhookDelivery.created_at < now - timedelta(hours=1)).count()
    failed = db.query(WebhookDelivery).filter(WebhookDelivery.status == "failed").count()
    return {"pending": pending, "overdue": overdue, "failed": failed}


def describe(row: WebhookDelivery) -> dict[str, Any]:
    return {"event_id": row.event_id, "type": row.event_type, "page": row.page_slug, "booking_id": row.booking_id,
            "url": row.url, "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "created": to_utc_iso(row.created_at),
            "next_attempt": to_utc_iso(row.next_attempt_at) if row.status in ("pending", "sending") else None,
            "delivered": to_utc_iso(row.delivered_at) if row.delivered_at else None}


def list_deliveries(db, *, status: str | None = None, booking_id: str | None = None, limit: int = 50) -> list[dict]:
    """Newest first."""
    q = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status:
        q = q.where(WebhookDelivery.status == status)
    if booking_id:
        q = q.where(WebhookDelivery.booking_id == booking_id)
    return [describe(r) for r in db.execute(q).scalars()]


def redeliver(uow, event_id: str, now: datetime) -> list[int]:
    """Send an event again (every endpoint it went to), whatever became of it: the same id and
    body, so a receiver that had it already drops the repeat. The attempts start afresh."""
    rows = uow.db.execute(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)).scalars().all()
    if not rows:
        raise InvalidInput("unknown_event", f"no webhook event {event_id!r}; `sessionpack webhooks list` shows them")
    for row in rows:
        row.status, row.attempts, row.next_attempt_at, row.created_at = "pending", 0, now, now
        row.delivered_at = None
    uow.db.flush()
    ids = [r.id for r in rows]
    # `booking_ids` is only for the eye (Flower's task list shows each task's booking).
    uow.enqueue(DELIVER_TASK, ids=ids, booking_ids=sorted({r.booking_id for r in rows if r.booking_id}) or None)
    return ids
