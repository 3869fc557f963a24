"""The HTTP API's models: request bodies are validated by them, and the OpenAPI document at
`/api/v1/openapi.json` is generated from them (web/api.py), so the two cannot drift apart.

Bodies refuse unknown fields and bound every string; the response models describe the booking
object of CONTRACT.md (extra fields allowed where the object may grow).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CancelBody(_Body):
    session_ids: list[str] = Field(min_length=1, max_length=20, description="sessions of one booking")
    reason: str | None = Field(default=None, max_length=500)
    change_id: str | None = Field(default=None, max_length=80,
                                  description="your idempotency key for this change (optional)")


class AdminCancelBody(_Body):
    reason: str | None = Field(default=None, max_length=500)
    refund: bool = Field(default=True, description="false cancels without a refund")
    change_id: str | None = Field(default=None, max_length=80)


class RescheduleBody(_Body):
    session_id: str = Field(max_length=64)
    to: str = Field(max_length=64, description="the new start, ISO 8601 with an offset")
    change_id: str | None = Field(default=None, max_length=80)


class AdminRescheduleBody(_Body):
    to: str = Field(max_length=64, description="the new start, ISO 8601 with an offset")
    change_id: str | None = Field(default=None, max_length=80)


class RefundBody(_Body):
    amount: str = Field(max_length=20, description="decimal amount in the booking's currency, e.g. \"12.50\"")
    reason: str | None = Field(default=None, max_length=500)
    refund_id: str | None = Field(default=None, max_length=80,
                                  description="idempotency key: the same refund_id refunds once")


class DecisionBody(_Body):
    reason: str | None = Field(default=None, max_length=500)
    change_id: str | None = Field(default=None, max_length=80)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SlotsResponse(BaseModel):
    slots: list[str] = Field(description="free start times, UTC ISO 8601")


class AcceptedResponse(BaseModel):
    booking_id: str
    status: str


class ChangeResponse(BaseModel):
    change_id: str
    booking_id: str


class CustomerOut(BaseModel):
    name: str | None
    email: str | None
    timezone: str


class ConferencingOut(BaseModel):
    provider: str
    meeting_id: str | None = None
    join_url: str | None = None
    password: str | None = None


class SessionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    number: int
    status: str
    start: str
    end: str
    relative_cost: str
    conferencing: ConferencingOut | None = None
    manage_url: str
    conferencing_info_url: str


class ManageSessionOut(SessionOut):
    can_cancel: bool
    cancel_refusal: ErrorDetail | None = None
    refund_if_cancelled: str | None = None
    can_reschedule: bool
    reschedule_refusal: ErrorDetail | None = None
    reschedule_fee: str | None = None


class ActivityOut(BaseModel):
    at: str
    actor: str
    action: str
    session_id: str | None = None
    details: dict[str, Any] = {}


class BookingOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    request_id: str
    status: str = Field(description="pending, confirmed, awaiting_approval, failed or cancelled")
    failure: dict[str, Any] | None = None
    booking_page: str | None
    event_type: str | None = None
    customer: CustomerOut
    price: str
    currency: str
    paid: str
    refunded: str
    fees: str
    sessions: list[SessionOut]
    activity: list[ActivityOut] = []


class ManageOut(BookingOut):
    sessions: list[ManageSessionOut]
    cancel_reason_required: bool = False
