"""Bookings, their sessions, the customer and the saga log of the booking workflow."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, clock_now

TROUBLED_CONFERENCING = text("step = 'conferencing' AND (attempts > 1 OR outcome = 'failed')")

# Session states that occupy the owner's time (they count for overlap and availability).
ACTIVE_SESSION_STATES = ("held", "confirmed")


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)


class Booking(Base):
    __tablename__ = "bookings"
    # The owner console's filters (services/console/stream.py): a page (and its event types),
    # and a customer's email whatever its case.
    __table_args__ = (
        Index("ix_bookings_page_event_type", "page_slug", "event_type_id"),
        Index("ix_bookings_customer_email_lower", text("lower(customer_email)")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(200), unique=True)
    # pending | awaiting_approval | confirmed | failed | cancelled
    status: Mapped[str] = mapped_column(String(24), default="pending", index=True)
    # The saga's next step while pending: authorize | conferencing | capture | done | compensate
    saga_step: Mapped[str] = mapped_column(String(24), default="authorize")
    failure: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The four references are empty only for a request refused before anything was held
    # (unknown page, bad slots...): such a booking is `failed` and holds nothing.
    page_slug: Mapped[str | None] = mapped_column(String(64), default=None)
    event_type_id: Mapped[int | None] = mapped_column(ForeignKey("event_types.id"), default=None)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("owners.id"), default=None, index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), default=None)
    event_type_slug: Mapped[str | None] = mapped_column(String(64), default=None)
    # The customer's details as given in this request (the customers row may change later).
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_timezone: Mapped[str] = mapped_column(String(64))
    price_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    payment_method: Mapped[str | None] = mapped_column(String(200), default=None)
    # Everything the booking was made under, frozen at booking time: policies, duration,
    # buffers, conferencing, reminders, names and zones. Later config changes never alter it.
    terms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now, index=True)

    sessions: Mapped[list["Session"]] = relationship(
        back_populates="booking", order_by="Session.number", lazy="selectin"
    )


class Session(Base):
    """One meeting of a booking. `block_*` is the time it occupies, buffers included."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("booking_id", "number", name="uq_sessions_booking_number"),
        Index("ix_sessions_owner_block", "owner_id", "block_start", "block_end"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), index=True)
    number: Mapped[int]
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"))
    # held (booking pending) | confirmed | cancelled | released (booking failed or declined)
    status: Mapped[str] = mapped_column(String(16), default="held")
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    block_start: Mapped[datetime]
    block_end: Mapped[datetime]
    relative_cost_cents: Mapped[int] = mapped_column(default=0)
    # iCalendar identity: the UID never changes, SEQUENCE rises with every change.
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    sequence: Mapped[int] = mapped_column(default=0)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)

    booking: Mapped[Booking] = relationship(back_populates="sessions")


class SagaStep(Base):
    """The saga log: one row per booking and step, with its latest outcome."""

    __tablename__ = "saga_steps"
    # The orphan-meeting sweep's candidates (services/conferencing/reconcile.py): partial, so it
    # holds only the few troubled conferencing steps, not a row for every step of every booking.
    __table_args__ = (Index("ix_saga_steps_conferencing_troubled", "updated_at",
                            postgresql_where=TROUBLED_CONFERENCING, sqlite_where=TROUBLED_CONFERENCING),)

    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(24), primary_key=True)
    # started | done | failed | compensated
    outcome: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)


class Meeting(Base):
    """A session's conferencing meeting. `host_url` is the owner's and never shown to customers."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(16))
    # creating (call in flight) | active | deleted
    status: Mapped[str] = mapped_column(String(16), default="creating")
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    join_url: Mapped[str | None] = mapped_column(String(1000), default=None)
    password: Mapped[str | None] = mapped_column(String(200), default=None)
    dial_in: Mapped[str | None] = mapped_column(String(500), default=None)
    host_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    # Tells the unit of work to insert a session before its meeting when both are new in one
    # flush (a booking confirmed at once: services/booking/at_once.py); never loaded eagerly.
    session: Mapped[Session] = relationship()
