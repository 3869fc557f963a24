"""Manual booking mode: the owner's decision, and the beat task that expires undecided requests."""
from __future__ import annotations

from services.booking import workflow
from worker.app import app

from .base import container, retry_transient


@app.task(name="sessionpack.approve_booking", bind=True, acks_late=True)
def approve_booking(self, booking_id: str) -> str:
    return retry_transient(self, workflow.approve_booking, container(), booking_id)


@app.task(name="sessionpack.decline_booking", bind=True, acks_late=True)
def decline_booking(self, booking_id: str, reason: str | None = None) -> str:
    return retry_transient(self, workflow.decline_booking, container(), booking_id, reason)


@app.task(name="sessionpack.expire_approval_requests", bind=True, acks_late=True)
def expire_approval_requests(self) -> int:
    return retry_transient(self, workflow.expire_approval_requests, container())
