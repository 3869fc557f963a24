"""The customer's cancel/reschedule page: `/manage/<token>` (the token is the authority).

Any session's manage link opens its package's page with that session pre-selected. Three tabs
(plain links, no script): Keep, Cancel, Reschedule. Changes go through the edge-side change API
(`services.lifecycle.requests`): the token is checked here and the queued message carries a
grant, never a token. After a change the confirmation page waits for the worker, then shows
what changed and the money moved (or "we are still working on it" with a refresh link).
"""
from __future__ import annotations

import threading
import time
from datetime import date
from functools import lru_cache
from urllib.parse import urlencode
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from services.errors import ServiceError
from services.lifecycle.preview import ManageView, change_summary, manage_view, reschedule_times
from services.lifecycle.access import manage_link
from services.tokens import make_manage_token

from .csrf import csrf_form
from .deps import get_container
from .ratelimit import open_link
from .templating import render

router = APIRouter()

TABS = ("keep", "cancel", "reschedule")
TAB_NAMES = {"keep": "Keep", "cancel": "Cancel", "reschedule": "Reschedule"}
# How long the confirmation page waits for the worker before it says "still working on it".
CHANGE_WAIT_SECONDS = 10.0
CHANGE_POLL_SECONDS = 0.25
# At most this many confirmation pages wait for the worker at once (each holds a thread of the
# pool every sync route shares): more answer at once with "still working on it" and a refresh link,
# so one valid link asked forty times cannot starve every other page.
CHANGE_WAITERS = threading.BoundedSemaphore(8)


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Region/City zones for the selector (no legacy aliases such as US/Eastern or Etc/GMT+3)."""
    regions = ("Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/",
               "Pacific/")
    return tuple(sorted(z for z in available_timezones() if z.startswith(regions))) + ("UTC",)


def _zone(requested: str | None, view: ManageView) -> str:
    """The zone to show times in: the one asked for when it is a known zone, else the customer's."""
    known = (*zone_names(), view.booking.customer_timezone, view.booking.owner_timezone)
    return requested if requested and requested in known else view.booking.customer_timezone


def _load(request: Request, token: str, c) -> tuple[str, ManageView]:
    """The token's session id and its package's view; 404 for an unknown token (rate limited)."""
    session_id = open_link(request, c, token, manage_link)
    try:
        return session_id, manage_view(c, session_id)
    except ServiceError:
        raise HTTPException(status_code=404) from None


def _page(request: Request, token: str, view: ManageView, *, tab: str, tz: str, selected: str | None = None,
          status_code: int = 200, **context):
    selected = selected if view.session(selected) else view.selected_session_id

    def link(**params) -> str:
        query = {"tab": params.pop("tab", tab), "tz": tz, **params}
        return f"/manage/{token}?{urlencode({k: v for k, v in query.items() if v})}"

    return render(request, "manage/page.html", {
        "view": view, "b": view.booking, "token": token, "tab": tab, "tabs": TABS, "tab_names": TAB_NAMES,
        "tz": tz, "zones": zone_names(), "selected": selected, "link": link,
        "page_title": f"{TAB_NAMES[tab]} · {view.booking.event_name or 'Your sessions'}",
        "notice": None, "times": None, "reason": "", "ticked": None, **context,
    }, status_code=status_code, token_page=True)


@router.get("/manage/{token}")
def manage_page(request: Request, token: str, tab: str = "keep", tz: str | None = None,
                session: str | None = None, c=Depends(get_container)):
    _, view = _load(request, token, c)
    return _page(request, token, view, tab=tab if tab in TABS else "keep", tz=_zone(tz, view), selected=session)


@router.get("/manage/{token}/times")
def reschedule_times_page(request: Request, token: str, session: str | None = None, tz: str | None = None,
                          start: str | None = None, c=Depends(get_container)):
    """Step two of Reschedule: the free times of the chosen session, by day, and the fee."""
    _, view = _load(request, token, c)
    zone = _zone(tz, view)
    choice = view.session(session)
    if choice is None or not choice.can_reschedule:
        notice = None if choice is None else {"kind": "refused", "heading": f"Session {choice.number} cannot be moved",
                                              "text": choice.reschedule_refusal.message}
        if choice is None:
            notice = {"kind": "refused", "heading": None, "text": "Choose a session to move first."}
        return _page(request, token, view, tab="reschedule", tz=zone, selected=session, notice=notice,
                     status_code=200 if choice is None else 409)
    try:
        from_day = date.fromisoformat(start) if start else None
    except ValueError:
        from_day = None
    times = reschedule_times(c, choice.id, zone, from_day)
    return _page(request, token, view, tab="reschedule", tz=zone, selected=choice.id, times=times, choice=choice)


def _same_booking(view: ManageView, ids: list[str]) -> bool:
    return bool(ids) and all(view.session(i) is not None for i in ids)


@router.post("/manage/{token}/cancel")
def cancel(request: Request, token: str, form=Depends(csrf_form), c=Depends(get_container)):
    from services.lifecycle.requests import request_cancel

    _, view = _load(request, token, c)
    zone = _zone(form.get("tz"), view)
    ids = [str(v) for v in form.getlist("session_ids")][:20]
    reason = str(form.get("reason") or "").strip()

    def refuse(heading: str, text: str, status: int = 409):
        return _page(request, token, view, tab="cancel", tz=zone, notice={"kind": "refused", "heading": heading,
                                                                          "text": text},
                     reason=reason, ticked=ids, status_code=status)

    if not ids:
        return refuse("Nothing was cancelled", "Tick at least one session to cancel.", 400)
    if not _same_booking(view, ids):
        raise HTTPException(status_code=404)
    blocked = [view.session(i) for i in ids if not view.session(i).can_cancel]
    if blocked:
        s = blocked[0]
        return refuse("Nothing was cancelled", f"Session {s.number} cannot be cancelled: {s.cancel_refusal.message}")
    if view.reason_required and not reason:
        return refuse("Nothing was cancelled", "Please tell us why you are cancelling; the reason is required.", 400)
    ordered = [s.id for s in view.sessions if s.id in ids]
    tokens = [make_manage_token(c.settings.secret_key, sid) for sid in ordered]
    try:
        change = request_cancel(c, ordered, tokens=tokens, reason=reason or None)
    except ServiceError as exc:
        return refuse("Nothing was cancelled", _plain(exc))
    return RedirectResponse(f"/manage/{token}/changes/{change}?{urlencode({'tz': zone})}", status_code=303)


@router.post("/manage/{token}/withdraw")
def withdraw(request: Request, token: str, form=Depends(csrf_form), c=Depends(get_container)):
    """Withdraw a request awaiting the owner's confirmation (manual booking mode), as a whole:
    through `request_cancel` with the customer's tokens of every session, which the worker turns
    into a withdrawal (services/lifecycle/withdraw.py). Nothing is paid before approval, so no
    money moves."""
    from services.lifecycle.requests import request_cancel

    _, view = _load(request, token, c)
    zone = _zone(form.get("tz"), view)
    reason = str(form.get("reason") or "").strip()

    def refuse(text: str, status: int = 409):
        return _page(request, token, view, tab="keep", tz=zone, status_code=status, reason=reason,
                     notice={"kind": "refused", "heading": "Nothing was withdrawn", "text": text})

    if not view.awaiting_approval:
        return refuse("There is no request waiting for the owner's confirmation to withdraw.")
    ids = [s.id for s in view.sessions]
    tokens = [make_manage_token(c.settings.secret_key, sid) for sid in ids]
    try:
        change = request_cancel(c, ids, tokens=tokens, reason=reason or None)
    except ServiceError as exc:
        return refuse(_plain(exc))
    return RedirectResponse(f"/manage/{token}/changes/{change}?{urlencode({'tz': zone})}", status_code=303)


@router.post("/manage/{token}/reschedule")
def reschedule(request: Request, token: str, form=Depends(csrf_form), c=Depends(get_container)):
    from services.lifecycle.requests import request_reschedule

    _, view = _load(request, token, c)
    zone = _zone(form.get("tz"), view)
    session_id, to = str(form.get("session_id") or ""), str(form.get("to") or "")
    choice = view.session(session_id)
    if choice is None:
        raise HTTPException(status_code=404)

    def refuse(text: str, status: int = 409):
        times = reschedule_times(c, choice.id, zone) if choice.can_reschedule else None
        return _page(request, token, view, tab="reschedule", tz=zone, selected=choice.id, times=times, choice=choice,
                     notice={"kind": "refused", "heading": f"Session {choice.number} was not moved", "text": text},
                     status_code=status)

    if not choice.can_reschedule:
        return refuse(choice.reschedule_refusal.message)
    if not to:
        return refuse("Choose one of the free times first.", 400)
    try:
        change = request_reschedule(c, choice.id, to, token=make_manage_token(c.settings.secret_key, choice.id))
    except ServiceError as exc:
        return refuse(_plain(exc))
    return RedirectResponse(f"/manage/{token}/changes/{change}?{urlencode({'tz': zone})}", status_code=303)


# The customer's words for refusals the edge can meet (the policy's own are in preview.py).
PLAIN = {
    "slot_unavailable": "That time was just taken by someone else. Please choose another time.",
    "limit_reached": "That day or week is fully booked now. Please choose another day.",
    "slot_in_past": "That time has already passed. Please choose another time.",
    "slot_too_soon": "That time is too soon. Please choose a later time.",
    "slot_outside_availability": "That time is outside the available hours. Please choose one of the times listed.",
    "slot_off_grid": "Please choose one of the times listed.",
    "same_time": "The session already starts at that time. Please choose a different time.",
    "reason_too_long": "The reason is too long; please keep it under 500 characters.",
    "session_already_cancelled": "That session is already cancelled.",
    "too_late_to_cancel": "It is too close to the session to cancel it now.",
    "too_late_to_reschedule": "It is too close to the session to move it now.",
    "policy_forbids": "The booking's policy does not allow this change online.",
}


def _plain(exc: ServiceError) -> str:
    return PLAIN.get(exc.code, "This change could not be made; nothing was changed.")


@router.get("/manage/{token}/changes/{change_id}")
def change_page(request: Request, token: str, change_id: str, tz: str | None = None, wait: float | None = None,
                c=Depends(get_container)):
    """The confirmation page: waits for the worker (up to CHANGE_WAIT_SECONDS), then shows what
    changed and the money moved, a refusal in plain words, or "still working on it"."""
    _, view = _load(request, token, c)
    if not (0 < len(change_id) <= 80) or not all(ch.isalnum() or ch in "_.:-" for ch in change_id):
        raise HTTPException(status_code=404)
    zone = _zone(tz, view)
    limit = CHANGE_WAIT_SECONDS if wait is None else max(0.0, min(float(wait), CHANGE_WAIT_SECONDS))
    summary = change_summary(c, view.booking.id, change_id)
    if summary.state in ("queued", "applied") and limit > 0 and CHANGE_WAITERS.acquire(blocking=False):
        try:
            deadline = time.monotonic() + limit
            while summary.state in ("queued", "applied") and time.monotonic() < deadline:
                time.sleep(CHANGE_POLL_SECONDS)
                summary = change_summary(c, view.booking.id, change_id)
        finally:
            CHANGE_WAITERS.release()
    if summary.state != "queued":
        view = manage_view(c, view.selected_session_id)  # the package as the change left it
    refused = summary.error and {"kind": "refused", "heading": "Nothing was changed",
                                 "text": PLAIN.get(summary.error.get("code"), summary.error.get("message"))}
    return render(request, "manage/change.html", {
        "view": view, "b": view.booking, "token": token, "tz": zone, "summary": summary, "refused": refused,
        "back": f"/manage/{token}?{urlencode({'tz': zone})}",
        "refresh": f"/manage/{token}/changes/{change_id}?{urlencode({'tz': zone})}",
        "page_title": "Your change",
    }, token_page=True)

