"""Manual booking mode: the owner's decision, and the beat task that expires undecided requests."""
from __future__ import annotations

from services import booking
from worker.app import app

from .args import Accepted, accepting
from .base import container, retry_transient


@app.task(name="sessionpack.approve_booking", bind=True, acks_late=True, typing=False)
@accepting
def approve_booking(self, c, ok: Accepted) -> str | dict:
    """Approve a request awaiting approval (`booking_id`); needs an admin grant (tasks/args.py)."""
    return retry_transient(self, booking.approve_booking, c, ok.args.booking_id,
                           actor=ok.actor or "admin")


@app.task(name="sessionpack.decline_booking", bind=True, acks_late=True, typing=False)
@accepting
def decline_booking(self, c, ok: Accepted) -> str | dict:
    """Decline a request awaiting approval (`booking_id`, `reason`); needs an admin grant."""
    return retry_transient(self, booking.decline_booking, c, ok.args.booking_id, ok.args.reason,
                           actor=ok.actor or "admin")


@app.task(name="sessionpack.expire_approval_requests", bind=True, acks_late=True)
def expire_approval_requests(self) -> int:
    return retry_transient(self, booking.expire_approval_requests, container())
