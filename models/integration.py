"""What crosses the service's edge besides email: outgoing webhooks, Stripe's events in, API keys."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, clock_now


class WebhookDelivery(Base):
    """One event for one configured endpoint, written in the transaction that made the change.

    `body` is the exact JSON text sent (and signed) on every attempt, so a retry or a redelivery
    carries the same event id and content. The endpoint's secret is never stored: `secret_env`
    names the environment variable the worker reads it from.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    page_slug: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret_env: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # pending | sending | delivered | failed (gave up)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock_now)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class StripeEvent(Base):
    """A Stripe webhook event handled once (its id is the dedupe key)."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    booking_id: Mapped[str | None] = mapped_column(String(40), default=None)
    outcome: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=clock_now)


class ApiKey(Base):
    """An HTTP API key. Only the SHA-256 of the key is kept; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    # Page slugs the key may act on; empty means every page.
    pages: Mapped[list[Any]] = mapped_column(default=list)
    admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
