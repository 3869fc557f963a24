"""The owner console under `/owner/...`: sign-in, the activity stream, a booking's page with the
admin actions, and the money at a glance.

Authority: a signed cookie (`sp_owner`: the owner's id and a stamp of their password hash,
HttpOnly, SameSite=Lax, Secure when PUBLIC_BASE_URL is https, 12 hours) issued after a
rate-limited sign-in. Every page checks it and scopes what it reads to the owner's own booking
pages (a site admin sees every page); another owner's booking is a 403, whatever the URL.

Each admin action is two steps, both forms with CSRF: the first shows what will happen and the
money (refund, fee) and asks to confirm; the second hands the change to the worker through the
edge-side change API (an admin grant in the task outbox) and redirects to the change's outcome
page. No provider is called in a request.
"""
from __future__ import annotations

import asyncio
import threading
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from itsdangerous import BadSignature, URLSafeTimedSerializer

from services.console import accounts, money as money_service, scope, stream
from services.console.accounts import OwnerIdentity
from services.errors import InvalidInput, NotFound, ServiceError

from . import owner_changes, owner_format  # noqa: F401 - registers the console's template filters
from .csrf import csrf_form
from .deps import client_address, get_container
from .templating import render, templates

router = APIRouter(prefix="/owner")

COOKIE = "sp_owner"
SESSION_MAX_AGE = 12 * 3600
PAGE_SIZE = 50


# -- the signed-in owner -------------------------------------------------------------------------


def _serializer(c) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(c.settings.secret_key, salt="sessionpack/web/owner-session/v1")


def _secure(c) -> bool:
    return c.settings.public_base_url.startswith("https://")


def _signed_in(request: Request, c) -> OwnerIdentity | None:
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 1000:
        return None
    try:
        data = _serializer(c).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    return accounts.load_identity(c, data.get("o"), data.get("s", ""), data.get("g"))


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/owner/login?{urlencode({'next': target})}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path of the console itself (never another site)."""
    if value and value.startswith("/owner/") and not value.startswith("//") and "\\" not in value:
        return value[:1000]
    return "/owner/activity"


_limiter_lock = threading.Lock()


def _login_limiter(request: Request, c) -> accounts.LoginLimiter:
    state = request.app.state
    if getattr(state, "owner_login_limiter", None) is None:
        with _limiter_lock:
            if getattr(state, "owner_login_limiter", None) is None:
                state.owner_login_limiter = accounts.LoginLimiter(accounts.limiter_storage_uri(c.settings))
    return state.owner_login_limiter


def _page(request: Request, name: str, owner: OwnerIdentity | None, context: dict, *, status_code: int = 200):
    ctx = {"owner": owner, "nav": None, **context}
    if name == "confirm.html":
        ctx.setdefault("change_id", owner_changes.new_change_id(context.get("action", "")))
    response = render(request, f"owner/{name}", ctx, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("")
@router.get("/")
def home(request: Request, c=Depends(get_container)):
    return RedirectResponse("/owner/activity" if _signed_in(request, c) else "/owner/login", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None, c=Depends(get_container)):
    if _signed_in(request, c):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _page(request, "login.html", None, {"page_title": "Sign in", "next": _safe_next(next), "login": "",
                                                "error": None})


@router.post("/login")
async def login(request: Request, form=Depends(csrf_form), c=Depends(get_container)):
    login_name, password = str(form.get("login", ""))[:320], str(form.get("password", ""))
    target = _safe_next(form.get("next"))
    # Past the owner's sign-in ceiling the answer is slowed (services/console/accounts.py says
    # why): the wait is awaited here, after the check, so a slowed attempt holds no thread.
    waits: list[float] = []
    who, refusal = None, None
    try:
        who = await run_in_threadpool(accounts.authenticate, c, _login_limiter(request, c), login_name, password,
                                      client_address(request), pause=waits.append)
    except ServiceError as exc:
        refusal = exc
    if waits:
        await asyncio.sleep(sum(waits))
    if isinstance(refusal, accounts.TooManyAttempts):
        message = refusal.message[:1].upper() + refusal.message[1:] + "."
        response = _page(request, "login.html", None, {"page_title": "Sign in", "next": target, "login": login_name,
                                                         "error": message}, status_code=429)
        response.headers["Retry-After"] = str(refusal.retry_after)
        return response
    if refusal is not None:
        return _page(request, "login.html", None, {"page_title": "Sign in", "next": target, "login": login_name,
                                                    "error": "The owner or the password is wrong."}, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, _serializer(c).dumps({"o": who.id, "s": who.stamp, "g": who.generation}), max_age=SESSION_MAX_AGE,
                        httponly=True, secure=_secure(c), samesite="lax", path="/owner")
    return response


@router.post("/logout")
def logout(request: Request, form=Depends(csrf_form), c=Depends(get_container)):
    who = _signed_in(request, c)
    if who is not None:  # ends this session on the server too: a copy of the cookie is signed out
        accounts.end_sessions(c, who.id)
    response = RedirectResponse("/owner/login", status_code=303)
    response.delete_cookie(COOKIE, path="/owner", httponly=True, secure=_secure(c), samesite="lax")
    return response


# -- the activity stream ---------------------------------------------------------------------------


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        day = None
    if day is None or not 1900 <= day.year <= 9000:  # a day past either end of the calendar is no filter
        raise InvalidInput("invalid_date", f"{name} must be a date like 2026-12-07")
    return day


def _filters_from(params, owner: OwnerIdentity) -> tuple[stream.StreamFilters, dict[str, str]]:
    """The stream's filters from the query string (dates are whole days in the owner's zone)."""
    zone = ZoneInfo(owner.timezone)
    raw = {k: (params.get(k) or "").strip()[:320] for k in ("page", "event_type", "customer", "from", "to",
                                                             "action", "status")}
    since, until = _day(raw["from"], "from"), _day(raw["to"], "to")
    event_type = None
    if raw["event_type"]:
        if not raw["event_type"].isdigit() or len(raw["event_type"]) > 9:
            raise InvalidInput("invalid_event_type", "choose an event type from the list")
        event_type = int(raw["event_type"])
    filters = stream.StreamFilters(
        page=raw["page"] or None, event_type_id=event_type, customer_email=raw["customer"] or None,
        since=datetime.combine(since, time(), zone) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), zone) if until else None,
        actions=(raw["action"],) if raw["action"] else (), status=raw["status"] or None,
    )
    return filters, raw


@router.get("/activity")
def activity(request: Request, c=Depends(get_container)):
    owner = _signed_in(request, c)
    if owner is None:
        return _to_login(request)
    error, rows, next_cursor = None, [], None
    with c.session_factory() as db:
        choices = scope.page_choices(db, owner)
        try:
            filters, raw = _filters_from(request.query_params, owner)
            page = stream.read_stream(db, owner, filters, cursor=request.query_params.get("cursor") or None,
                                      limit=PAGE_SIZE)
            rows, next_cursor = page.rows, page.next_cursor
        except InvalidInput as exc:
            raw = {k: (request.query_params.get(k) or "")[:320] for k in ("page", "event_type", "customer", "from",
                                                                          "to", "action", "status")}
            error = exc.message
    kept = {k: v for k, v in raw.items() if v}
    return _page(request, "activity.html", owner, {
        "page_title": "Activity", "nav": "activity", "rows": rows, "choices": choices, "raw": raw, "error": error,
        "action_groups": stream.ACTION_GROUPS, "statuses": stream.BOOKING_STATUSES, "filtered": bool(kept),
        "next_url": f"/owner/activity?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None,
        "first_url": f"/owner/activity?{urlencode(kept)}" if request.query_params.get("cursor") else None,
    })


# -- a booking ---------------------------------------------------------------------------------------


def _booking_or_deny(request: Request, c, owner: OwnerIdentity, booking_id: str):
    """The booking's id when the owner may see it; 404 unknown, 403 another owner's."""
    with c.session_factory() as db:
        try:
            return scope.booking_for(db, owner, booking_id).id
        except scope.Forbidden:
            raise _Denied()
        except NotFound:
            raise HTTPException(status_code=404)


class _Denied(Exception):
    pass


def _forbidden(request: Request, owner: OwnerIdentity):
    return _page(request, "forbidden.html", owner, {"page_title": "Not your booking"}, status_code=403)


def _guard(request: Request, c, booking_id: str):
    """(owner, None) when the owner may act on the booking, else (owner or None, a response)."""
    owner = _signed_in(request, c)
    if owner is None:
        return None, _to_login(request)
    try:
        _booking_or_deny(request, c, owner, booking_id)
    except _Denied:
        return owner, _forbidden(request, owner)
    return owner, None


def booking_context(c, owner: OwnerIdentity, booking_id: str) -> dict[str, Any]:
    """What the booking page shows: the package, each session, the money, the booking's activity."""
    from sqlalchemy import select

    from models import Booking, LedgerEntry
    from services.booking.ids import public_request_id
    from services.booking.views import PUBLIC_SESSION_STATUS, booking_view
    from services.lifecycle import money_position

    with c.session_factory() as db:
        booking = db.get(Booking, booking_id)
        view = booking_view(db, booking, c.settings)
        position = money_position(db, booking_id)
        ledger = list(db.execute(select(LedgerEntry).where(LedgerEntry.booking_id == booking_id)
                                 .order_by(LedgerEntry.id)).scalars())
        history = stream.read_stream(db, owner, stream.StreamFilters(booking_id=booking_id), limit=200).rows
        reasons = {s.id: s.cancel_reason for s in booking.sessions}
        page_slug, request_id = booking.page_slug, public_request_id(booking.request_id)
    now = c.clock()
    moved: dict[tuple[str, str], int] = {}  # (session id, kind) -> cents, succeeded movements only
    for e in ledger:
        if e.session_id and e.status == "succeeded":
            moved[(e.session_id, e.kind)] = moved.get((e.session_id, e.kind), 0) + e.amount_cents
    sessions = [{"view": s, "status": PUBLIC_SESSION_STATUS.get(s.status, s.status), "past": s.end <= now,
                 "reason": reasons.get(s.id), "active": s.status == "confirmed" and s.end > now,
                 "refunded": moved.get((s.id, "refund"), 0), "fees": moved.get((s.id, "fee"), 0)}
                for s in view.sessions]
    return {"booking": view, "sessions": sessions, "position": position, "ledger": ledger, "history": history,
            "page_slug": page_slug, "request_id": request_id, "zone": owner.timezone,
            "awaiting": view.status == "awaiting_approval",
            "any_active": any(s["active"] for s in sessions) and view.status == "confirmed"}


@router.get("/bookings/{booking_id}")
def booking_page(request: Request, booking_id: str, c=Depends(get_container)):
    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    ctx = booking_context(c, owner, booking_id)
    return _page(request, "booking.html", owner, {"page_title": f"Booking of {ctx['booking'].customer_name}",
                                                  "nav": "activity", **ctx})


# -- admin actions: confirm (money first), then hand to the worker ------------------------------------


def _refused(request: Request, c, owner, booking_id: str, exc: ServiceError, *, status_code: int = 200):
    """The booking page again, with why nothing was changed."""
    ctx = booking_context(c, owner, booking_id)
    return _page(request, "booking.html", owner, {"page_title": f"Booking of {ctx['booking'].customer_name}",
                                                  "nav": "activity", "refusal": exc.message, **ctx},
                 status_code=status_code)


def _ids(form, name: str = "session_ids") -> list[str]:
    return [str(v)[:40] for v in form.getlist(name)][:20]


@router.post("/bookings/{booking_id}/cancel")
def cancel_confirm(request: Request, booking_id: str, form=Depends(csrf_form), c=Depends(get_container)):
    """Step 1: what cancelling these sessions does, and the refund, before anything happens."""
    from services.lifecycle import preview_cancel

    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    session_ids, refund = _ids(form), form.get("refund", "policy") != "none"
    reason = (str(form.get("reason") or "").strip() or None)
    try:
        owner_changes.sessions_of_booking(c, booking_id, session_ids)
        plan = preview_cancel(c, session_ids, admin=True, refund=refund, reason=reason)
    except ServiceError as exc:
        return _refused(request, c, owner, booking_id, exc)
    ctx = booking_context(c, owner, booking_id)
    chosen = [s for s in ctx["sessions"] if s["view"].id in session_ids]
    return _page(request, "confirm.html", owner, {
        "page_title": "Confirm the cancellation", "nav": "activity", "action": "cancel", **ctx,
        "chosen": chosen, "refund_cents": plan["refund_cents"], "with_refund": refund, "reason": reason or "",
        "withdraw": plan["withdraw"]})


@router.post("/bookings/{booking_id}/reschedule")
def reschedule_confirm(request: Request, booking_id: str, form=Depends(csrf_form), c=Depends(get_container)):
    """Step 1 of a move: the new time (a listed free time or any time the admin types)."""
    from services.lifecycle import preview_reschedule

    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    session_id = str(form.get("session_id") or "")[:40]
    try:
        owner_changes.sessions_of_booking(c, booking_id, [session_id])
        new_start = _new_start(form, owner)
        plan = preview_reschedule(c, session_id, new_start, admin=True)
    except ServiceError as exc:
        return _refused(request, c, owner, booking_id, exc)
    ctx = booking_context(c, owner, booking_id)
    chosen = [s for s in ctx["sessions"] if s["view"].id == session_id]
    from services.availability import parse_instant

    return _page(request, "confirm.html", owner, {
        "page_title": "Confirm the new time", "nav": "activity", "action": "reschedule", **ctx, "chosen": chosen,
        "new_start": plan["start"], "new_start_at": parse_instant(plan["start"]), "fee_cents": plan["fee_cents"]})


def _new_start(form, owner: OwnerIdentity) -> str:
    """The chosen free time (an ISO instant), or the typed local date and time in the owner's zone."""
    picked = str(form.get("to") or "")[:40]
    if picked and picked != "other":
        return picked
    day, clock = str(form.get("other_date") or "")[:10], str(form.get("other_time") or "")[:5]
    try:
        local = datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), ZoneInfo(owner.timezone))
    except ValueError:
        raise InvalidInput("invalid_time", "Pick a free time, or give a date and a time (like 2026-12-07 and 09:30).")
    return local.isoformat()


@router.get("/bookings/{booking_id}/reschedule")
def reschedule_page(request: Request, booking_id: str, session: str = "", start: str | None = None,
                    c=Depends(get_container)):
    """The free times of one session, a week at a time (in the owner's zone), and any other time."""
    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    ctx = booking_context(c, owner, booking_id)
    chosen = [s for s in ctx["sessions"] if s["view"].id == session[:40] and s["active"]]
    if not chosen:
        raise HTTPException(status_code=404)
    try:
        from_day = date.fromisoformat(start) if start else None
    except ValueError:
        from_day = None
    times = _free_times(c, chosen[0]["view"].id, owner.timezone, from_day)
    return _page(request, "reschedule.html", owner, {"page_title": "Reschedule a session", "nav": "activity", **ctx,
                                                      "chosen": chosen[0], "times": times})


def _free_times(c, session_id: str, zone: str, from_day: date | None):
    """Free start times by local day for a week (the customer pages' engine, the session's own
    block freed). The admin may also type any other time."""
    from services.lifecycle.preview import reschedule_times

    return reschedule_times(c, session_id, zone, from_day)


@router.post("/bookings/{booking_id}/refund")
def refund_confirm(request: Request, booking_id: str, form=Depends(csrf_form), c=Depends(get_container)):
    from services.lifecycle import preview_refund

    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    amount, reason = str(form.get("amount") or "").strip()[:40], (str(form.get("reason") or "").strip() or None)
    try:
        if not amount:
            raise InvalidInput("invalid_amount", "Give the amount to refund, like 12.50.")
        plan = preview_refund(c, booking_id, amount, admin=True, reason=reason)
    except ServiceError as exc:
        return _refused(request, c, owner, booking_id, exc)
    ctx = booking_context(c, owner, booking_id)
    return _page(request, "confirm.html", owner, {
        "page_title": "Confirm the refund", "nav": "activity", "action": "refund", **ctx, "chosen": [],
        "amount": amount, "amount_cents": plan["amount_cents"], "reason": reason or ""})


@router.post("/bookings/{booking_id}/decide")
def decide_confirm(request: Request, booking_id: str, form=Depends(csrf_form), c=Depends(get_container)):
    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    decision = form.get("decision")
    if decision not in ("approve", "decline"):
        raise HTTPException(status_code=400)
    ctx = booking_context(c, owner, booking_id)
    if not ctx["awaiting"]:
        return _refused(request, c, owner, booking_id, InvalidInput(
            "not_awaiting_approval", f"This booking is {ctx['booking'].status.replace('_', ' ')}: there is no request "
                                     "to approve or decline."))
    return _page(request, "confirm.html", owner, {
        "page_title": f"Confirm: {decision}", "nav": "activity", "action": decision, **ctx,
        "chosen": ctx["sessions"], "reason": str(form.get("reason") or "").strip()[:500]})


@router.post("/bookings/{booking_id}/submit")
def submit(request: Request, booking_id: str, form=Depends(csrf_form), c=Depends(get_container)):
    """Step 2: the confirmed change goes to the worker under an admin grant."""
    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    action = form.get("action")
    reason = (str(form.get("reason") or "").strip() or None)
    # Chosen by the confirmation page: the same form posted twice is one change.
    key = str(form.get("change_id") or "")[:80] or owner_changes.new_change_id(str(action))
    actor = owner_changes.actor_of_owner(owner.id)  # the activity stream says which owner acted
    try:
        if action == "cancel":
            change_id = owner_changes.cancel(c, booking_id, _ids(form), refund=form.get("with_refund") == "yes",
                                             reason=reason, change_id=key, actor=actor)
        elif action == "reschedule":
            change_id = owner_changes.reschedule(c, booking_id, str(form.get("session_id") or "")[:40],
                                                 str(form.get("to") or "")[:40], change_id=key, actor=actor)
        elif action == "refund":
            change_id = owner_changes.refund(c, booking_id, str(form.get("amount") or "")[:40], reason=reason,
                                             change_id=key, actor=actor)
        elif action in ("approve", "decline"):
            change_id = owner_changes.decide(c, booking_id, action, reason=reason, change_id=key, actor=actor)
        else:
            raise HTTPException(status_code=400)
    except ServiceError as exc:
        return _refused(request, c, owner, booking_id, exc)
    return RedirectResponse(f"/owner/bookings/{booking_id}/changes/{change_id}", status_code=303)


@router.get("/bookings/{booking_id}/changes/{change_id}")
def change_page(request: Request, booking_id: str, change_id: str, c=Depends(get_container)):
    """What became of a change: waiting for the worker (the page refreshes itself), done, refused."""
    owner, denied = _guard(request, c, booking_id)
    if denied:
        return denied
    outcome = owner_changes.outcome(c, booking_id, change_id[:100])
    ctx = booking_context(c, owner, booking_id)
    return _page(request, "change.html", owner, {"page_title": "Change " + outcome.state_label, "nav": "activity",
                                                  **ctx, "outcome": outcome})


# -- money --------------------------------------------------------------------------------------------


@router.get("/money")
def money_page(request: Request, c=Depends(get_container)):
    owner = _signed_in(request, c)
    if owner is None:
        return _to_login(request)
    with c.session_factory() as db:
        months = money_service.money_by_month(db, owner, zone=owner.timezone)
        names = {p.slug: p.name for p in scope.page_choices(db, owner)}
    totals: dict[str, dict[str, int]] = {}
    for m in months:
        t = totals.setdefault(m.currency, {"captured": 0, "fees": 0, "refunded": 0, "net": 0, "pending": 0})
        t["captured"] += m.captured
        t["fees"] += m.fees
        t["refunded"] += m.refunded
        t["net"] += m.net
        t["pending"] += m.pending_refunds
    return _page(request, "money.html", owner, {"page_title": "Money", "nav": "money", "months": months,
                                                 "names": names, "totals": totals})


@router.get("/money/ledger.csv")
def ledger_csv(request: Request, c=Depends(get_container)):
    owner = _signed_in(request, c)
    if owner is None:
        return _to_login(request)
    db = c.session_factory()

    def rows():
        try:
            yield from money_service.ledger_csv(db, owner)
        finally:
            db.close()

    stamp = c.clock().strftime("%Y%m%d")
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="sessionpack-ledger-{stamp}.csv"', "Cache-Control": "no-store"})
