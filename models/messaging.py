"""Outboxes (emails, tasks) and the reminder schedule: work decided in a transaction, done after."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, clock_now


UNPURGED_SENT = text("status = 'sent' AND body_purged_at IS NULL")
CHANGE_KEY_LENGTH = 80


def change_index(change_key: object) -> str | None:
    """The indexed form of a change key (`Activity.change_key`): the key itself when it is short,
    else a digest of it, so a key of any length is found through the index at the same cost."""
    if not isinstance(change_key, str) or not change_key:
        return None
    if len(change_key) <= CHANGE_KEY_LENGTH:
        return change_key
    return "sha256:" + hashlib.sha256(change_key.encode("utf-8", "surrogatepass")).hexdigest()


class OutboxEmail(Base):
    """An email written in the transaction that decided it, delivered after commit, once."""

    __tablename__ = "outbox_emails"
    __table_args__ = (
        Index("ix_outbox_emails_status_next", "status", "next_attempt_at"),
        # The retention sweep: sent emails whose bodies are still kept, oldest first.
        Index("ix_outbox_emails_unpurged", "sent_at", postgresql_where=UNPURGED_SENT, sqlite_where=UNPURGED_SENT),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[str | None] = mapped_column(ForeignKey("bookings.id"), default=None, index=True)
    session_id: Mapped[str | None] = mapped_column(String(40), default=None)
    to_addr: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str | None] = mapped_column(String(320), default=None)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    # [{"filename", "content_type", "content"}]; content is text (calendar files).
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    # pending | sending | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime] = mapped_column(default=clock_now)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the retention sweep emptied the bodies and attachments (they hold manage links,
    # passcodes and host links); the metadata above stays.
    body_purged_at: Mapped[datetime | None] = mapped_column(default=None)


class TaskOutbox(Base):
    """A Celery task to enqueue once the transaction that asked for it has committed."""

    __tablename__ = "task_outbox"
    __table_args__ = (Index("ix_task_outbox_pending", "dispatched_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(120))
    kwargs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=clock_now)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)


class Reminder(Base):
    """One reminder of one session for one recipient, due at `due_at` (UTC)."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("session_id", "before_minutes", "recipient", name="uq_reminders_session_offset"),
        Index("ix_reminders_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"))
    before_minutes: Mapped[int]
    recipient: Mapped[str] = mapped_column(String(16), default="customer")  # customer | owner
    due_at: Mapped[datetime]
    # scheduled | sent | dropped (session cancelled) | skipped (already past when planned/too late)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


# A calendar sync outcome in the activity stream (a literal, so it matches the partial index
# below under any query plan).
CALENDAR_SYNC_ACTIONS = ("calendar.synced", "calendar.sync_failed")
CALENDAR_SYNC_ENTRY = text("action IN ({})".format(", ".join(f"'{a}'" for a in CALENDAR_SYNC_ACTIONS)))


HAS_CHANGE_KEY = text("change_key IS NOT NULL")


class Activity(Base):
    """The append-only activity stream."""

    __tablename__ = "activity"
    __table_args__ = (
        Index("ix_activity_booking", "booking_id", "id"),
        # The owner console's stream (services/console/stream.py) is newest first by (at, id),
        # read by keyset: all of it, one booking's entries, or one action's.
        Index("ix_activity_at_id", "at", "id"),
        Index("ix_activity_booking_at", "booking_id", "at", "id"),
        Index("ix_activity_action_at", "action", "at", "id"),
        # Calendar sync outcomes only: `doctor` and the re-sync sweep look for each booking's
        # latest one, and should not read every other entry of the stream to find them.
        Index("ix_activity_calendar_sync", "booking_id", "id",
              postgresql_where=CALENDAR_SYNC_ENTRY, sqlite_where=CALENDAR_SYNC_ENTRY),
        # A change's entries (services/lifecycle/changes.py), including refusals of unknown ids
        # that have no booking: each look-up costs the same however many are stored.
        Index("ix_activity_change_key", "change_key", postgresql_where=HAS_CHANGE_KEY, sqlite_where=HAS_CHANGE_KEY),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=clock_now)
    booking_id: Mapped[str | None] = mapped_column(String(40), default=None)
    session_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor: Mapped[str] = mapped_column(String(64), default="system")
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # `change_index(details["change"])`, set by UnitOfWork.record.
    change_key: Mapped[str | None] = mapped_column(String(CHANGE_KEY_LENGTH), default=None)
