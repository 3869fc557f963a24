"""What owners offer: owners, booking pages and event types (written by `config apply`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, clock_now


class Owner(Base):
    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    # {"caldav_url", "username", "password_env"}: never the password itself.
    calendar: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The owner console's login (services/console/accounts.py): an argon2 hash, never the
    # password; None until `sessionpack owner set-password`. A site admin sees every page.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    site_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The console's session generation: in every signed-in browser's cookie; signing out and a new
    # password add one, which ends every cookie issued before (a copied cookie included).
    session_generation: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)


class BookingPage(Base):
    __tablename__ = "booking_pages"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    # {"weekly": {"mon": [["09:00","17:00"]], ...}, "exceptions": [{"date": "...", "hours": [...]}]}
    availability: Mapped[dict[str, Any]]
    # False: the page is booked directly through its one default offering (EventType.slug == "").
    has_event_types: Mapped[bool] = mapped_column(default=True)
    # Outgoing webhooks: [{"url", "secret_env", "events": [...]}] (the secret stays in the environment).
    webhooks: Mapped[list[Any] | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)


class EventType(Base):
    """One bookable offering. A page without event types has one row with `slug == ""`."""

    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("page_slug", "slug", name="uq_event_types_page_slug"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    page_slug: Mapped[str] = mapped_column(ForeignKey("booking_pages.slug"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    duration_minutes: Mapped[int]
    booking_mode: Mapped[str] = mapped_column(String(16), default="automatic")
    sessions_per_booking: Mapped[int] = mapped_column(default=1)
    pooled_availability: Mapped[bool] = mapped_column(default=False)
    max_bookings_per_day: Mapped[int | None] = mapped_column(default=None)
    max_bookings_per_week: Mapped[int | None] = mapped_column(default=None)
    min_notice_minutes: Mapped[int] = mapped_column(default=0)
    buffer_before_minutes: Mapped[int] = mapped_column(default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(default=0)
    slot_interval_minutes: Mapped[int | None] = mapped_column(default=None)
    conferencing_provider: Mapped[str] = mapped_column(String(16), default="none")
    price_cents: Mapped[int | None] = mapped_column(default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    # {"cancel": {"allowed", "min_notice_hours", "refund_percent"}, "reschedule": {..., "fee_percent"}}
    policies: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"before_minutes": 1440, "notify_owner": false}, ...]
    reminders: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)
