"""Declarative base and column types shared by every table."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps it as `timestamptz`; SQLite has no zone support, so the value is stored
    as naive UTC and re-tagged on the way out. Naive input is refused: it is always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class NoClock(RuntimeError):
    """A row was written through an engine built without the service's clock."""


def clock_now(context) -> datetime:
    """The default and onupdate of every timestamp column: the time of the clock the engine was
    built with (`make_engine(url, clock=...)`, the container's clock), never the wall clock
    behind the service's back. The service compares these times with that same clock (emails
    due, stalled bookings, sweeps), so they must come from it, in tests as in production."""
    clock = context.execution_options.get("clock")
    if clock is None:
        raise NoClock("this engine has no clock: build it with make_engine(url, clock=container.clock)")
    return clock()


def db_now(db) -> datetime:
    """The engine's clock, for values a service writes itself (Core statements, upserts)."""
    clock = db.connection().get_execution_options().get("clock")
    if clock is None:
        raise NoClock("this engine has no clock: build it with make_engine(url, clock=container.clock)")
    return clock()
