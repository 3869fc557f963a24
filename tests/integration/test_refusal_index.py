"""Refusals of unknown ids are looked up through an index: with 100k of them stored (no booking,
each its own change), PostgreSQL answers a change's outcome with an index scan, never a scan of
the stream, and as fast as on an empty stream (issue 16, finding 9: 15 ms -> 1.6 s at 100k)."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import insert, text

from models import Activity
from services import lifecycle
from services.errors import NotFound
from services.lifecycle.changes import change_outcome, entries_of_change_query
from models.messaging import change_index

pytestmark = pytest.mark.integration

STORED = 100_000


def plan(c, query) -> str:
    sql = str(query.compile(dialect=c.engine.dialect, compile_kwargs={"literal_binds": True}))
    with c.engine.connect() as conn:
        return "\n".join(row[0] for row in conn.execute(text("EXPLAIN " + sql)))


def refuse_unknown(c) -> str:
    key = uuid.uuid4().hex
    with pytest.raises(NotFound):
        lifecycle.cancel_sessions(c, ["ss_" + uuid.uuid4().hex[:24]], admin=True, change_key=key)
    return key


def timed_outcome(c, key: str, rounds: int = 20) -> float:
    with c.session_factory() as db:
        start = time.perf_counter()
        for _ in range(rounds):
            outcome = change_outcome(db, None, key)
        elapsed = (time.perf_counter() - start) / rounds
    assert outcome is not None and outcome.state == "refused" and outcome.error.code == "unknown_session"
    return elapsed


@pytest.mark.parametrize("db_backend", ["postgres"])
def test_a_refusals_lookup_is_an_index_scan_and_costs_the_same_at_100k(container, db_backend):
    c = container
    first = refuse_unknown(c)
    empty = timed_outcome(c, first)
    rows = [{"action": "cancel.refused", "booking_id": None, "session_id": None, "actor": "customer",
             "change_key": change_index(k), "details": {"change": k, "code": "unknown_session", "exit_code": 2,
                                                        "message": "session does not exist"}}
            for k in (uuid.uuid4().hex for _ in range(STORED))]
    with c.engine.begin() as conn:
        for i in range(0, STORED, 10_000):
            conn.execute(insert(Activity), rows[i:i + 10_000])
    last = refuse_unknown(c)  # and through the real path again, after them
    with c.engine.begin() as conn:
        conn.execute(text("ANALYZE activity"))
        assert conn.execute(text("SELECT count(*) FROM activity WHERE booking_id IS NULL")).scalar() >= STORED

    explained = plan(c, entries_of_change_query(None, last))
    assert "ix_activity_change_key" in explained and "Seq Scan" not in explained, explained
    full = timed_outcome(c, last)
    print(f"\nchange_outcome of a refusal: {empty * 1000:.2f} ms with 1 stored, {full * 1000:.2f} ms with "
          f"{STORED} stored\n{explained}")
    assert full < max(5 * empty, 0.01)  # the same order: an index probe, not a scan of 100k rows


def test_a_very_long_change_key_is_indexed_by_its_digest(container):
    c = container
    key = "k" * 5000
    with pytest.raises(NotFound):
        lifecycle.cancel_sessions(c, ["ss_unknown"], admin=True, change_key=key)
    with c.session_factory() as db:
        (entry,) = db.query(Activity).filter_by(action="cancel.refused").all()
        assert entry.change_key.startswith("sha256:") and len(entry.change_key) <= 80
        assert change_outcome(db, None, key).error.code == "unknown_session"
        assert change_outcome(db, None, "k" * 4999) is None
