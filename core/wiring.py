"""The one wiring function: settings -> engine -> services. Nothing connects at import time.

`get_container()` builds the process-wide container on first use (the CLI, the web process and
each worker process call it lazily); tests call `build_container(settings)` to get their own.
The container sends tasks through the Celery app that the process registered with
`use_celery_app` (importing `worker.app` registers the worker's app), so this module never
imports a process package.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Callable, Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession, sessionmaker

from models import TaskOutbox
from models.db import make_engine
from models.uow import UnitOfWork

from .settings import Settings

log = logging.getLogger("sessionpack.wiring")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Container:
    """Everything a service needs, built from settings. Integrations are built on first use."""

    settings: Settings
    clock: Callable[[], datetime] = field(default=_utcnow)
    celery_app: object | None = None
    # Extra busy times of an owner beside their sessions (their calendar), or None.
    busy_source: Callable | None = None

    @cached_property
    def engine(self):
        # Rows are stamped with this container's clock (read at each use, so a test may move it).
        return make_engine(self.settings.database_url, clock=lambda: self.clock())

    @cached_property
    def session_factory(self) -> sessionmaker:
        return sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[OrmSession]:
        """A session for reading only, beside the units of work: whatever it might change is
        rolled back when the block ends (writes go through `uow()`, which commits them)."""
        with self.session_factory() as db:
            try:
                yield db
            finally:
                db.rollback()

    def uow(self) -> UnitOfWork:
        """A new unit of work whose follow-up tasks are sent to the broker after commit."""
        return UnitOfWork(self.session_factory, after_commit=self.dispatch_tasks, before_commit=self._emit_webhooks)

    def _emit_webhooks(self, uow: UnitOfWork, recorded: list[tuple]) -> None:
        """Outgoing webhooks of the outcomes recorded in a unit of work, in its transaction."""
        from services.webhooks import emit_recorded

        emit_recorded(uow, self.settings, recorded, self.clock())

    # -- integrations -------------------------------------------------------------------------
    @cached_property
    def conferencing(self) -> dict:
        from services.conferencing import build_providers

        return build_providers(self.settings)

    @cached_property
    def payments(self):
        from services.stripe_gateway import StripeGateway

        return StripeGateway(self.settings)

    @cached_property
    def email_sender(self):
        from services.notifications.sender import build_sender

        return build_sender(self.settings, clock=lambda: self.clock())

    # -- the task outbox ------------------------------------------------------------------------
    def dispatch_tasks(self, ids: list[int] | None = None, limit: int = 500) -> int:
        """Send task-outbox rows to the broker: the given ids, or every pending one (the sweep).

        A row is claimed (dispatched_at set) before it is sent and released if sending fails, so
        a row is normally sent once; a rare double send is harmless because tasks are idempotent.
        """
        if self.celery_app is None:
            return 0
        with self.session_factory() as db:
            pending = select(TaskOutbox.id).where(TaskOutbox.dispatched_at.is_(None))
            if ids is not None:
                pending = pending.where(TaskOutbox.id.in_(ids))
            pending = pending.order_by(TaskOutbox.id).limit(limit).scalar_subquery()
            # One statement claims them all; a concurrent sweep claims none of the same rows.
            claimed = db.execute(
                update(TaskOutbox)
                .where(TaskOutbox.id.in_(pending), TaskOutbox.dispatched_at.is_(None))
                .values(dispatched_at=self.clock())
                .returning(TaskOutbox.id, TaskOutbox.task_name, TaskOutbox.kwargs)
            ).all()
            db.commit()
        return self.send_claimed(claimed)

    def send_claimed(self, claimed) -> int:
        """Send task-outbox rows already claimed (dispatched_at set), as (id, task name, kwargs);
        a row the broker refuses is released (dispatched_at cleared) for the sweep. Returns how
        many were sent."""
        sent, failed = 0, []
        for row_id, task_name, kwargs in sorted(claimed):
            try:
                self.celery_app.send_task(task_name, kwargs=kwargs)
                sent += 1
            except Exception as exc:  # broker down: leave it to the sweep
                log.warning("could not enqueue %s: %s", task_name, exc)
                failed.append(row_id)
        if failed:
            with self.session_factory() as db:
                db.execute(update(TaskOutbox).where(TaskOutbox.id.in_(failed)).values(dispatched_at=None))
                db.commit()
        return sent


def prune_dispatched_tasks(container: "Container", older_than_hours: float = 24.0, limit: int = 10_000) -> int:
    """Delete task-outbox rows sent long ago: they only served to survive a crash after commit."""
    from datetime import timedelta

    from sqlalchemy import delete, select

    cutoff = container.clock() - timedelta(hours=older_than_hours)
    with container.session_factory() as db:
        ids = select(TaskOutbox.id).where(TaskOutbox.dispatched_at < cutoff).limit(limit).scalar_subquery()
        removed = db.execute(delete(TaskOutbox).where(TaskOutbox.id.in_(ids))).rowcount
        db.commit()
    return removed


def build_container(settings: Settings | None = None, **overrides) -> Container:
    settings = settings or Settings()
    if "busy_source" not in overrides:
        # Owners' calendars count as busy time; owners without one cost no I/O.
        from services.calendar import build_busy_source

        overrides["busy_source"] = build_busy_source(settings)
    return Container(settings=settings, **overrides)


_container: Container | None = None
_celery_app_factory: Callable[[], object] | None = None
_lock = threading.Lock()


def use_celery_app(factory: Callable[[], object] | None) -> None:
    """Name the Celery app (a function returning it) that `get_container()` sends tasks with.

    `worker.app` registers the worker's app when imported; a process that enqueues work (the
    CLI, the web process) imports it before its first `get_container()`."""
    global _celery_app_factory
    with _lock:
        _celery_app_factory = factory


def get_container() -> Container:
    """The process-wide container, built on first use."""
    global _container
    with _lock:
        if _container is None:
            app = _celery_app_factory() if _celery_app_factory is not None else None
            if app is None:
                log.warning("no Celery app registered: tasks stay in the outbox until a sweep sends them")
            _container = build_container(celery_app=app)
        return _container


def set_container(container: Container | None) -> None:
    """Replace the process-wide container (tests, the demo)."""
    global _container
    with _lock:
        _container = container
