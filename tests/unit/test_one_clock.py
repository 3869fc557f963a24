"""One clock: every timestamp the service stores comes from the container's clock.

A column default or onupdate that reads the wall clock behind the service's back made in-process
emails never due once real time passed the tests' clock (issue 14). These tests fail if any model
column's default reads anything but the engine's clock.
"""
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import Date, DateTime
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session as OrmSession

from models import Base, Booking, NoClock, OutboxEmail, TaskOutbox, UTCDateTime
from models.db import make_engine

# Far from any real date, so a value read from the wall clock can never pass for it.
PINNED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def _callable_defaults():
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            for kind in ("default", "onupdate"):
                default = getattr(column, kind)
                if default is not None and default.is_callable:
                    yield f"{table.name}.{column.name}.{kind}", column, default


def _server_defaults():
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            for kind in ("server_default", "server_onupdate"):
                default = getattr(column, kind)
                if default is not None:
                    yield f"{table.name}.{column.name}.{kind}", default


def _is_time(column) -> bool:
    return isinstance(column.type, (DateTime, Date, UTCDateTime))


def test_every_callable_column_default_reads_the_engines_clock():
    found = list(_callable_defaults())
    stamps = [(name, d) for name, column, d in found if _is_time(column)]
    assert len(stamps) >= 20  # the timestamps of every table; an empty scan proves nothing
    context = SimpleNamespace(execution_options={"clock": lambda: PINNED})
    wrong = {name: d.arg(context) for name, d in stamps if d.arg(context) != PINNED}
    assert wrong == {}, f"timestamp defaults not read from the service's clock: {wrong}"
    # Any other callable default (an empty dict or list) makes no time of its own.
    others = {name: d.arg(context) for name, column, d in found if not _is_time(column)}
    assert not [v for v in others.values() if isinstance(v, (datetime, date))], others


def test_a_timestamp_default_without_a_clock_refuses_instead_of_reading_the_wall_clock():
    context = SimpleNamespace(execution_options={})
    for name, column, default in _callable_defaults():
        if _is_time(column):
            with pytest.raises(NoClock):
                default.arg(context)


def test_no_timestamp_column_has_a_constant_default():
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if _is_time(column) and column.default is not None and not column.default.is_callable:
                assert column.default.arg is None, f"{table.name}.{column.name} has a fixed time as default"


def test_no_server_side_default_reads_the_database_clock():
    clocks = ("now(", "current_timestamp", "localtimestamp", "clock_timestamp", "datetime(", "strftime(")
    for name, default in _server_defaults():
        text = str(getattr(default, "arg", default)).lower()
        assert not any(c in text for c in clocks), f"{name} reads the database's clock: {text}"


def test_rows_written_through_the_engine_carry_its_clocks_time(tmp_path):
    now = {"t": PINNED}
    engine = make_engine(f"sqlite:///{tmp_path / 'clock.db'}", clock=lambda: now["t"])
    Base.metadata.create_all(engine)
    try:
        with OrmSession(engine) as db:
            email = OutboxEmail(message_id="<m@x>", kind="k", to_addr="a@example.org", subject="s",
                                text_body="t", html_body="h")
            task = TaskOutbox(task_name="t", kwargs={})
            booking = Booking(id="bk_clock", request_id="r-clock", customer_name="Sam", customer_email="s@example.org",
                              customer_timezone="UTC")
            db.add_all([email, task, booking])
            db.commit()
            assert (email.next_attempt_at, email.created_at, task.created_at) == (PINNED, PINNED, PINNED)
            assert (booking.created_at, booking.updated_at) == (PINNED, PINNED)
            now["t"] = PINNED + timedelta(hours=3)
            booking.status = "confirmed"
            db.commit()
            assert booking.updated_at == PINNED + timedelta(hours=3)
            assert booking.created_at == PINNED
    finally:
        engine.dispose()


def test_an_engine_without_a_clock_cannot_stamp_a_row(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'noclock.db'}")
    Base.metadata.create_all(engine)
    try:
        with OrmSession(engine) as db:
            db.add(TaskOutbox(task_name="t", kwargs={}))
            with pytest.raises(StatementError) as err:
                db.commit()
            assert isinstance(err.value.orig, NoClock)
    finally:
        engine.dispose()
