"""The HTTP API for frontends, `/api/v1` (JSON). See CONTRACT.md, "HTTP API".

Every call carries `Authorization: Bearer <key>` (`sessionpack apikey create`); a key covers its
pages (or all) and only an admin key acts as the administrator. Requests are checked here with
the same service functions and error codes as the worker, then the work is queued through the
task outbox (`services.booking.intake`, `services.lifecycle.requests`): nothing here calls Stripe,
a conferencing provider or SMTP. Errors are `{"error": {"code", "message"}}`: 422 invalid input,
404 unknown, 409 conflict or refused by the rules, 401 no or bad key, 403 key not allowed,
413 body over 64 KB, 429 over the key's rate limit (with Retry-After).

Request bodies are read as JSON and validated by the pydantic models below (booking requests by
the worker's own model), and the OpenAPI document at `/api/v1/openapi.json` is generated from
those same models.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from services.booking.request import BookingRequest
from services.errors import Conflict, InvalidInput, NotFound, OperationFailed, ServiceError, Unavailable

from .api_models import (
    CancelBody,
    AdminCancelBody,
    RescheduleBody,
    AdminRescheduleBody,
    RefundBody,
    DecisionBody,
    ErrorResponse,
    SlotsResponse,
    AcceptedResponse,
    ChangeResponse,
    BookingOut,
    ManageOut,
)
from .deps import get_container

log = logging.getLogger("sessionpack.web.api")

PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX)
DEFAULT_RATE = "600/minute"
MAX_BODY_BYTES = 64 * 1024


def _body_doc(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema(
        ref_template="#/components/schemas/{model}")}}}}


ERRORS = {status: {"model": ErrorResponse, "description": text} for status, text in (
    (401, "no key, or an unknown or revoked one"), (403, "the key does not cover this page or is not an admin key"),
    (404, "unknown"), (409, "conflict, or refused by the booking's rules"), (413, "body over 64 KB"),
    (422, "invalid input"), (429, "over the key's rate limit; see Retry-After"))}


# -- errors, keys, limits -----------------------------------------------------------------------------


def api_error(status: int, code: str, message: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail={"error": {"code": code, "message": message}}, headers=headers)


def status_of(exc: ServiceError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 403 if exc.code in ("admin_required", "admin_grant_required", "forbidden") else 422
    if isinstance(exc, Unavailable):
        return 503
    if isinstance(exc, OperationFailed):
        return 409
    return 409


def service_error(exc: ServiceError) -> HTTPException:
    return api_error(status_of(exc), exc.code, exc.message)


class KeyLimiter:
    """Requests per key in a moving window (the `limits` library), on Redis when the broker is."""

    def __init__(self, broker_url: str, rate: str):
        from limits import parse, storage, strategies

        uri = broker_url if broker_url.startswith(("redis://", "rediss://")) else "memory://"
        self.item = parse(rate)
        self.limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(uri))

    def retry_after(self, key_name: str) -> int | None:
        """None when the request may go on; else seconds to wait."""
        try:
            if self.limiter.hit(self.item, "sessionpack-api", key_name):
                return None
            reset, _ = self.limiter.get_window_stats(self.item, "sessionpack-api", key_name)
            return max(1, int(reset - time.time()) + 1)
        except Exception as exc:  # noqa: BLE001 - the limit store is down: serve rather than refuse all
            log.warning("API rate limit store unavailable: %s", exc)
            return None


_limiter_lock = threading.Lock()


def _limiter(request: Request, c) -> KeyLimiter:
    state = request.app.state
    if getattr(state, "api_limiter", None) is None:
        with _limiter_lock:
            if getattr(state, "api_limiter", None) is None:
                state.api_limiter = KeyLimiter(c.settings.broker_url, getattr(c.settings, "api_rate_limit", None)
                                               or DEFAULT_RATE)
    return state.api_limiter


# Keys checked recently, by hash: (principal or None, when checked). A revoked key stops working
# within KEY_CACHE_SECONDS in every web process; a key is looked up at most that often per process.
KEY_CACHE_SECONDS = 5.0
_keys: dict[str, tuple[Any, float]] = {}


def _authenticate(c, key: str):
    from services.apikeys import authenticate, key_hash

    digest, now = key_hash(key), time.monotonic()
    hit = _keys.get(digest)
    if hit is not None and now - hit[1] < KEY_CACHE_SECONDS:
        return hit[0]
    with c.session_factory() as db:
        who = authenticate(db, key)
    if len(_keys) > 10_000:
        _keys.clear()
    _keys[digest] = (who, now)
    return who


def principal(request: Request, c=Depends(get_container)):
    """The API key's principal (FastAPI dependency): 401 without a valid key, 429 over its rate."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise api_error(401, "api_key_required", "send your API key as `Authorization: Bearer <key>` "
                                                 "(`sessionpack apikey create` makes one)",
                        headers={"WWW-Authenticate": "Bearer"})
    who = _authenticate(c, key.strip())
    if who is None:
        raise api_error(401, "api_key_invalid", "the API key is unknown or revoked",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    wait = _limiter(request, c).retry_after(who.name)
    if wait is not None:
        raise api_error(429, "rate_limited", f"too many requests with this key; retry in {wait} s",
                        headers={"Retry-After": str(wait)})
    return who


def _admin(who) -> None:
    if not who.admin:
        raise api_error(403, "admin_key_required", "this action needs an admin key (`sessionpack apikey create --admin`)")


def _covers(who, page: str | None) -> None:
    if not who.covers(page):
        raise api_error(403, "page_not_covered", f"this key does not cover booking page {page!r}")


def _unknown_booking(booking_id: str) -> HTTPException:
    return api_error(404, "unknown_booking", f"booking {booking_id!r} does not exist; check the id")


def _covers_booking(who, page: str | None, booking_id: str) -> None:
    """A booking of a page the key does not cover is answered exactly as an unknown one: booking
    ids follow from request_ids, so a 403 would tell a key that another page used one."""
    if not who.covers(page):
        raise _unknown_booking(booking_id)


async def _json(request: Request) -> Any:
    # The app refuses anything over its own limit before reading; the API's is lower.
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise api_error(413, "body_too_large", f"the body is over {MAX_BODY_BYTES // 1024} KB")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise api_error(413, "body_too_large", f"the body is over {MAX_BODY_BYTES // 1024} KB")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise api_error(422, "invalid_json", "the body must be a JSON object") from None


async def _parse(request: Request, model: type[BaseModel]) -> BaseModel:
    data = await _json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise api_error(422, "invalid_request", f"{where}: {first['msg']}") from None


def _page_of_booking(c, booking_id: str) -> str | None:
    from models import Booking, BookingRequest
    from sqlalchemy import select

    with c.session_factory() as db:
        booking = db.get(Booking, booking_id)
        if booking is not None:
            return booking.page_slug
        row = db.execute(select(BookingRequest).where(BookingRequest.booking_id == booking_id)).scalar_one_or_none()
        if row is not None:
            return (row.body or {}).get("booking_page")
    raise _unknown_booking(booking_id)


def _page_of_session(c, session_id: str) -> tuple[str, str | None]:
    from models import Booking, Session

    with c.session_factory() as db:
        s = db.get(Session, session_id)
        if s is None:
            raise api_error(404, "unknown_session", f"session {session_id!r} does not exist; check the id")
        return s.booking_id, db.get(Booking, s.booking_id).page_slug


async def _call(fn, *args, **kwargs):
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ServiceError as exc:
        raise service_error(exc) from None


# -- slots and bookings ---------------------------------------------------------------------------------


def _slots(c, target: str, start: str | None, end: str | None, tz: str | None) -> dict:
    from services.scheduling import list_slots

    if not start or not end:
        raise InvalidInput("invalid_date", "give both `from` and `to` as YYYY-MM-DD")
    with c.session_factory() as db:
        return {"slots": list_slots(db, target, start, end, tz, now=c.clock())}


@router.get("/pages/{page}/slots", response_model=SlotsResponse, responses=ERRORS,
            summary="Free start times of a page booked directly")
async def page_slots(page: str, request: Request, tz: str | None = None, c=Depends(get_container),
                     who=Depends(principal)):
    _covers(who, page)
    q = request.query_params
    return JSONResponse(await _call(_slots, c, page, q.get("from"), q.get("to"), tz))


@router.get("/pages/{page}/{event_type}/slots", response_model=SlotsResponse, responses=ERRORS,
            summary="Free start times of an event type")
async def event_type_slots(page: str, event_type: str, request: Request, tz: str | None = None,
                           c=Depends(get_container), who=Depends(principal)):
    _covers(who, page)
    q = request.query_params
    return JSONResponse(await _call(_slots, c, f"{page}/{event_type}", q.get("from"), q.get("to"), tz))


# `from` is a Python keyword: the dates are read from the query string and documented by hand.
_DATE_PARAMS = [{"name": name, "in": "query", "required": True, "schema": {"type": "string", "format": "date"},
                 "description": text} for name, text in (("from", "first day (YYYY-MM-DD, in `tz`)"),
                                                          ("to", "last day (YYYY-MM-DD, in `tz`)"))]


@router.post("/bookings", status_code=202, response_model=AcceptedResponse, responses=ERRORS,
             openapi_extra=_body_doc(BookingRequest),
             summary="Submit a booking request (validated now, then queued)")
async def create_booking(request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.booking.intake import accept_booking_request

    data = await _json(request)
    page = data.get("booking_page") if isinstance(data, dict) else None
    if isinstance(page, str):
        _covers(who, page)
    elif who.pages:
        raise api_error(422, "invalid_request", "booking_page is required")
    # A key scoped to pages keeps its request_ids in its page's own namespace (services.booking.ids).
    scope = page if who.pages else None
    accepted = await _call(accept_booking_request, c, data, source="api", scope=scope)
    return JSONResponse({"booking_id": accepted.booking_id, "status": accepted.status}, status_code=202,
                        headers={"Location": f"{PREFIX}/bookings/{accepted.booking_id}"})


def _booking_object(c, booking_id: str) -> dict | None:
    from services.booking.intake import find_booking_object

    with c.session_factory() as db:
        return find_booking_object(db, booking_id, c.settings)


@router.get("/bookings/{booking_id}", response_model=BookingOut, responses=ERRORS, summary="A booking")
async def get_booking(booking_id: str, c=Depends(get_container), who=Depends(principal)):
    obj = await _call(_booking_object, c, booking_id)
    if obj is None:
        raise _unknown_booking(booking_id)
    _covers_booking(who, obj.get("booking_page"), booking_id)
    return JSONResponse(obj)


# -- the customer's manage view and changes, by manage token ------------------------------------------


def _open(c, token: str):
    from services.lifecycle.access import manage_link

    with c.session_factory() as db:
        link = manage_link(db, c.settings.secret_key, token, c.clock())
    if link is None:
        raise NotFound("unknown_token", "this manage link is unknown, forged or no longer valid")
    return link


async def _covered_link(c, who, token: str):
    """The manage link `token` opens, when the key covers its booking's page."""
    link = await _call(_open, c, token)
    _covers(who, _page_of_booking(c, link.booking_id))
    return link


def _in_booking(c, link, session_id: str) -> None:
    """Refuse a session that is not part of the link's booking (404 for an unknown one too)."""
    booking_id, _ = _page_of_session(c, session_id)
    if booking_id != link.booking_id:
        raise api_error(404, "unknown_session", f"session {session_id!r} is not part of this booking")


@router.get("/manage/{token}", response_model=ManageOut, responses=ERRORS,
            summary="The booking as its customer sees it, with what each session allows now")
async def manage(token: str, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.preview import manage_object

    link = await _covered_link(c, who, token)
    return JSONResponse(await _call(manage_object, c, link.session_id))


@router.post("/manage/{token}/cancel", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(CancelBody), summary="Cancel sessions of the customer's booking")
async def manage_cancel(token: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_cancel
    from services.tokens import make_manage_token

    body = await _parse(request, CancelBody)
    link = await _covered_link(c, who, token)
    # The manage token opens its whole package: the customer's own tokens for the sessions named,
    # after checking each belongs to that booking (the service checks them again).
    ids = list(dict.fromkeys(body.session_ids))
    for sid in ids:
        _in_booking(c, link, sid)
    tokens = [make_manage_token(c.settings.secret_key, sid) for sid in ids]
    change = await _call(request_cancel, c, ids, tokens=tokens, reason=body.reason, change_id=body.change_id)
    return _change(change)


@router.post("/manage/{token}/reschedule", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(RescheduleBody), summary="Move one session of the customer's booking")
async def manage_reschedule(token: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_reschedule
    from services.tokens import make_manage_token

    body = await _parse(request, RescheduleBody)
    link = await _covered_link(c, who, token)
    _in_booking(c, link, body.session_id)
    change = await _call(request_reschedule, c, body.session_id, body.to,
                         token=make_manage_token(c.settings.secret_key, body.session_id), change_id=body.change_id)
    return _change(change)


def _actor(who) -> str:
    """How the activity stream names an admin key's changes: `apikey:<key name>`."""
    from services.lifecycle.access import admin_actor

    return admin_actor("apikey", who.name)


def _change(change) -> JSONResponse:
    return JSONResponse({"change_id": str(change), "booking_id": change.booking_id}, status_code=202,
                        headers={"Location": f"{PREFIX}/bookings/{change.booking_id}"})


# -- admin keys ------------------------------------------------------------------------------------------


async def _admin_body(request: Request, c, who, model: type[BaseModel], *, session_id: str | None = None,
                      booking_id: str | None = None, empty_ok: bool = False) -> BaseModel:
    """An admin endpoint's checks, in this order: an admin key, a valid body (an empty one is `model()`
    when `empty_ok`), the session or booking exists, and the key covers its booking page."""
    _admin(who)
    body = model() if empty_ok and not (await request.body()).strip() else await _parse(request, model)
    if session_id is not None:
        _covers(who, _page_of_session(c, session_id)[1])
    else:
        _covers_booking(who, _page_of_booking(c, booking_id), booking_id)
    return body


@router.post("/sessions/{session_id}/cancel", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(AdminCancelBody), summary="Cancel a session as the administrator")
async def admin_cancel(session_id: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_cancel

    body = await _admin_body(request, c, who, AdminCancelBody, session_id=session_id)
    return _change(await _call(request_cancel, c, [session_id], admin=True, refund=body.refund, reason=body.reason,
                               change_id=body.change_id, actor=_actor(who)))


@router.post("/sessions/{session_id}/reschedule", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(AdminRescheduleBody), summary="Move a session as the administrator")
async def admin_reschedule(session_id: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_reschedule

    body = await _admin_body(request, c, who, AdminRescheduleBody, session_id=session_id)
    return _change(await _call(request_reschedule, c, session_id, body.to, admin=True, change_id=body.change_id,
                               actor=_actor(who)))


@router.post("/bookings/{booking_id}/refunds", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(RefundBody), summary="Refund part or all of a booking (idempotent by refund_id)")
async def admin_refund(booking_id: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_refund

    body = await _admin_body(request, c, who, RefundBody, booking_id=booking_id)
    return _change(await _call(request_refund, c, booking_id, body.amount, reason=body.reason,
                               refund_id=body.refund_id, actor=_actor(who)))


@router.post("/bookings/{booking_id}/approve", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(DecisionBody), summary="Approve a request awaiting approval")
async def admin_approve(booking_id: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_approve

    body = await _admin_body(request, c, who, DecisionBody, booking_id=booking_id, empty_ok=True)
    return _change(await _call(request_approve, c, booking_id, change_id=body.change_id, actor=_actor(who)))


@router.post("/bookings/{booking_id}/decline", status_code=202, response_model=ChangeResponse, responses=ERRORS,
             openapi_extra=_body_doc(DecisionBody), summary="Decline a request awaiting approval")
async def admin_decline(booking_id: str, request: Request, c=Depends(get_container), who=Depends(principal)):
    from services.lifecycle.requests import request_decline

    body = await _admin_body(request, c, who, DecisionBody, booking_id=booking_id, empty_ok=True)
    return _change(await _call(request_decline, c, booking_id, reason=body.reason, change_id=body.change_id,
                               actor=_actor(who)))


# -- the OpenAPI document -----------------------------------------------------------------------------------


_OPENAPI: dict | None = None


def openapi_document() -> dict:
    """OpenAPI 3 for /api/v1, generated from the routes and models above."""
    global _OPENAPI
    if _OPENAPI is None:
        routes = [r for r in router.routes if getattr(r, "include_in_schema", True)]
        doc = get_openapi(title="sessionpack API", version="1", openapi_version="3.1.0", routes=routes,
                          description=__doc__.split("\n\n")[1].replace("\n", " "))
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        # Request bodies documented through openapi_extra carry their own $defs: lift them.
        for path in doc["paths"].values():
            for op in path.values():
                schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                if schema and "$defs" in schema:
                    schemas.update(schema.pop("$defs"))
        for route_path, path in doc["paths"].items():
            if route_path.endswith("/slots"):
                path["get"].setdefault("parameters", [])[0:0] = _DATE_PARAMS
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                    "description": "an API key from `sessionpack apikey create`"}}
        doc["security"] = [{"bearer": []}]
        _OPENAPI = doc
    return _OPENAPI


@router.get("/openapi.json", include_in_schema=False)
def openapi_json():
    return JSONResponse(openapi_document())
