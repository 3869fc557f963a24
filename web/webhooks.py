"""`POST /webhooks/stripe`: Stripe's events in, verified with STRIPE_WEBHOOK_SECRET.

The signature is checked with `stripe.Webhook.construct_event` (a forged or stale one gets 400
and changes nothing); the event is then handled by `services.stripe_events.handle_event`, which
dedupes it by id and calls nothing outside the database. Without a secret configured the
endpoint answers 503, so Stripe keeps the events and retries them once it is set.
"""
from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.errors import ServiceError
from services.stripe_events import handle_event

from .deps import get_container

log = logging.getLogger("sessionpack.web.webhooks")
router = APIRouter()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@router.post("/webhooks/stripe", include_in_schema=False)
async def stripe_webhook(request: Request, c=Depends(get_container)):
    import stripe

    secret = c.settings.stripe_webhook_secret
    if not secret:
        return _error(503, "stripe_webhooks_not_configured",
                      "STRIPE_WEBHOOK_SECRET is not set; Stripe will retry the event once it is")
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    if not signature:
        return _error(400, "signature_missing", "the Stripe-Signature header is missing")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
        event = json.loads(payload)
    except stripe.SignatureVerificationError:
        log.warning("stripe webhook with a bad signature refused")
        return _error(400, "signature_invalid", "the Stripe-Signature header does not match the body")
    except ValueError:
        return _error(400, "payload_invalid", "the body is not a JSON event")
    try:
        result = await run_in_threadpool(handle_event, c, event)
    except ServiceError as exc:
        return _error(400, exc.code, exc.message)
    return JSONResponse({"received": True, **result})
