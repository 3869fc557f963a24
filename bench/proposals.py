"""The changes the benchmarks propose, as monkeypatches, so their effect can be measured before
anyone edits the service. Nothing imports this module unless asked:

    SESSIONPACK_BENCH_PROPOSALS=all .venv/bin/python -m bench.throughput --label proposals
    SESSIONPACK_BENCH_PROPOSALS=preping ...   (a comma-separated subset)

The worker gets it through bench/noop_tasks.py (loaded with `-I bench.noop_tasks`), which calls
`apply_from_env()`. Each patch is the minimal change proposed for the named file and function;
see the README's Benchmarks section for the evidence.
"""
from __future__ import annotations

import os

ENV = "SESSIONPACK_BENCH_PROPOSALS"


# P1-P3 and P6 (reminders planned in one query, saga-log upserts, the task outbox claimed in one
# statement, no calendar task for owners without a calendar) were measured here and are now part
# of the service itself; the README's Benchmarks section has the before and after figures. P4 (no
# thread pool for builtin meetings) is superseded: builtin meetings are now made in one
# transaction, with no thread pool (services/booking/steps.py _provision_locally).


# P5 models/db.py make_engine: no pool_pre_ping (one extra round trip per checkout, ~10 per
# booking); a dropped connection already surfaces as a transient OperationalError that the tasks
# retry (tasks/base.py is_transient), and SQLAlchemy invalidates the pool on a disconnect.
def _patch_engine():
    from models import db as models_db

    original = models_db.make_engine

    def make_engine(database_url, **kwargs):
        if not database_url.startswith("sqlite"):
            kwargs.setdefault("pool_pre_ping", False)
        return original(database_url, **kwargs)

    models_db.make_engine = make_engine
    from core import wiring

    wiring.make_engine = make_engine


# P7 models/uow.py UnitOfWork.record: the activity entries of a unit of work written with one
# Core insert() just before the commit, instead of as ORM objects flushed by the unit of work
# (~33 per 10-session booking). Measurement only: entries would no longer be visible to queries
# later in the same transaction (reschedule limits, change look-ups read the stream), nor dropped
# by a rollback inside the unit. README, "Where a booking's time goes", has the figures.
def _patch_activity():
    from sqlalchemy import insert

    from models import uow as models_uow
    from models.messaging import Activity, change_index

    original_commit = models_uow.UnitOfWork.commit

    def record(self, action, *, booking_id=None, session_id=None, actor="system", **details):
        change = change_index(details.get("change"))
        if change is not None and change != details["change"]:
            details = {**details, "change": change}
        self.__dict__.setdefault("_core_rows", []).append(dict(
            action=action, booking_id=booking_id, session_id=session_id, actor=actor, details=details,
            change_key=change))

    def commit(self):
        rows = self.__dict__.pop("_core_rows", [])
        if rows:
            if self._before_commit is not None:
                self._before_commit(self, [(r["action"], r["booking_id"], r["session_id"], r["details"])
                                           for r in rows])
            # Core on the table, not the ORM's bulk insert: that one splits the rows by which
            # columns are None (4 statements a booking instead of 1).
            self.session.connection().execute(insert(Activity.__table__), rows)
        original_commit(self)

    models_uow.UnitOfWork.record = record
    models_uow.UnitOfWork.commit = commit


def apply(names: set[str]) -> list[str]:
    applied = []
    if names & {"all", "preping"}:
        _patch_engine()
        applied.append("preping")
    if names & {"activity_core"}:
        _patch_activity()
        applied.append("activity_core")
    return applied


def apply_from_env() -> list[str]:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return []
    return apply({v.strip() for v in value.split(",") if v.strip()})
