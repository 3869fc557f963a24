"""The unit of work: one transaction that rolls back unless committed.

Follow-up tasks asked for inside it are written to the task outbox in the same transaction and
handed to the broker only after the commit, so a task never runs against data that was rolled
back, and a task that was decided is never lost (a periodic sweep sends what a crash left).
"""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy.orm import Session as OrmSession, sessionmaker

from .messaging import Activity, TaskOutbox, change_index

# Called after commit with the ids of the task-outbox rows written in the transaction.
AfterCommit = Callable[[list[int]], None]
# Called just before commit, inside the transaction, with the unit of work and the activity
# entries it recorded as (action, booking_id, session_id, details): the outgoing webhooks.
BeforeCommit = Callable[["UnitOfWork", list[tuple]], None]


class UnitOfWork:
    """`with uow_factory() as uow: ...; uow.commit()` — leaving the block without commit rolls back."""

    def __init__(self, session_factory: sessionmaker, after_commit: AfterCommit | None = None,
                 before_commit: BeforeCommit | None = None):
        self._session_factory = session_factory
        self._after_commit = after_commit
        self._before_commit = before_commit
        self._recorded: list[tuple] = []
        self.session: OrmSession | None = None
        self._task_rows: list[TaskOutbox] = []
        self.committed = False

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.committed:
                self.session.rollback()
        finally:
            self.session.close()

    # The ORM session, under a short name for the services.
    @property
    def db(self) -> OrmSession:
        return self.session

    def enqueue(self, task_name: str, **kwargs: Any) -> None:
        """Ask for a task to run after this transaction commits."""
        row = TaskOutbox(task_name=task_name, kwargs=kwargs)
        self.session.add(row)
        self._task_rows.append(row)

    def record(self, action: str, *, booking_id: str | None = None, session_id: str | None = None,
               actor: str = "system", **details: Any) -> None:
        """Append an entry to the activity stream, in this transaction."""
        change = change_index(details.get("change"))
        if change is not None and change != details["change"]:
            details = {**details, "change": change}  # a made-up key of any length is kept as its digest
        entry = Activity(action=action, booking_id=booking_id, session_id=session_id, actor=actor, details=details,
                         change_key=change)
        self.session.add(entry)
        self._recorded.append(entry)

    def commit(self) -> None:
        if self._recorded and self._before_commit is not None:
            # Entries of a part rolled back meanwhile have left the session: they did not happen.
            recorded = [(a.action, a.booking_id, a.session_id, a.details) for a in self._recorded if a in self.session]
            self._recorded = []
            if recorded:
                self._before_commit(self, recorded)
        if self._task_rows:
            self.session.flush()
        ids = [row.id for row in self._task_rows]
        self.session.commit()
        self.committed = True
        self._task_rows, self._recorded = [], []
        if ids and self._after_commit is not None:
            self._after_commit(ids)
