"""Payments and the money ledger: every capture, fee and refund, in integer cents."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, clock_now


class Payment(Base):
    """The package's one PaymentIntent (manual capture) and the card saved for later fees."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), unique=True)
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    payment_method: Mapped[str] = mapped_column(String(200))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(200), default=None)
    intent_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # authorizing | authorized | captured | cancelled | failed
    status: Mapped[str] = mapped_column(String(16), default="authorizing")
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)


# A fee charged, or on its way (a literal, so it matches the partial index under any query plan).
CHARGED_FEE = text("kind = 'fee' AND status IN ('pending', 'succeeded')")


class LedgerEntry(Base):
    """One money movement. Written `pending` before the Stripe call, `succeeded` after it.

    `idempotency_key` is unique: the same movement can never be recorded (or sent) twice.
    Amounts are positive; `kind` says the direction (capture and fee in, refund out).
    """

    __tablename__ = "ledger_entries"
    # The orphaned-fee sweep (services/lifecycle/abandon.py) reads the recent charged fees only.
    __table_args__ = (Index("ix_ledger_entries_fees", "updated_at",
                            postgresql_where=CHARGED_FEE, sqlite_where=CHARGED_FEE),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), default=None)
    kind: Mapped[str] = mapped_column(String(16))  # capture | fee | refund
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    # pending | succeeded | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    stripe_object_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # For a refund: the PaymentIntent it draws on (so a stuck one can be sent again by the sweep).
    target_id: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    actor: Mapped[str] = mapped_column(String(64), default="system")
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    updated_at: Mapped[datetime] = mapped_column(default=clock_now, onupdate=clock_now)
