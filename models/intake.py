"""The intake: every booking request we answered, stored before it was published.

A request that got an answer ("queued", a booking id) is a row here, committed in the same
transaction as the task-outbox row that publishes it, so a broker that forgets the message (a
restart without persistence, a worker killed before the task started) cannot lose it: the sweep
publishes it again until a booking has picked it up. The row is also the request_id's
idempotency record: the fingerprint of the canonical request body decides whether a repeated
request_id is the same request (same answer) or another one (`request_id_reused`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, clock_now

# A request published and not yet picked up by a booking (literal, so it matches the partial index).
QUEUED = text("state = 'queued'")


class BookingRequest(Base):
    """One booking request, keyed by its request_id."""

    __tablename__ = "booking_requests"
    __table_args__ = (
        # The sweep's candidates: only requests still waiting for a worker, however many were taken.
        Index("ix_booking_requests_queued", "published_at", postgresql_where=QUEUED, sqlite_where=QUEUED),
    )

    request_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    booking_id: Mapped[str] = mapped_column(String(40), unique=True)
    # sha256 (hex) of the canonical request body (services/booking/intake.py `fingerprint`).
    fingerprint: Mapped[str] = mapped_column(String(64))
    # cli | api | broker (a message published straight on the broker, recorded by the worker)
    source: Mapped[str] = mapped_column(String(16))
    # queued (accepted, waiting for a worker) | taken (a booking exists for it)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    # The canonical request while it waits; cleared once the booking holds it.
    body: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    price_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    publishes: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    published_at: Mapped[datetime] = mapped_column(default=clock_now)
