"""Test helpers shared by the suites: databases, containers, and driving the saga in-process."""
from __future__ import annotations

import weakref

import contextlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text, update

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def example_config() -> dict:
    return json.loads((FIXTURES / "example_config.json").read_text())


class PostgresDatabase:
    """A database of our own for one test run, dropped at the end (never a shared state)."""

    def __init__(self) -> None:
        self.name = f"sp_test_{secrets.token_hex(4)}"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        admin.dispose()

    def drop(self) -> None:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(engine) -> None:
    from models import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


# The tests' calendar. The suite was written against Monday 2026-11-30 12:00 UTC; the tests now
# start on the same Monday moved forward by whole 52-week years until it lies ahead of the real
# now (a worker or CLI in another process reads the real clock, so every slot a test books must be
# in the real future too). 52 weeks keep the weekday and the time of day, and keep the dates in
# late November / December, weeks after the DST changes in America and Europe, so local times in
# the tests never cross one. The suite therefore passes on any date.
WRITTEN_FOR = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
_YEAR = timedelta(weeks=52)


def _years_ahead(now: datetime) -> int:
    # At least a day between the real now and the tests' start: a test may run for a while.
    behind = now + timedelta(days=1) - WRITTEN_FOR
    return 0 if behind <= timedelta(0) else -(-behind // _YEAR)


SHIFT = _years_ahead(datetime.now(timezone.utc)) * _YEAR
START = WRITTEN_FOR + SHIFT  # a Monday, 12:00 UTC


def on(text: str) -> str:
    """A date or time written for the original calendar ("2026-12-07", "2026-12-07T14:00:00Z"),
    moved to the tests' calendar (same weekday, same time of day)."""
    if len(text) == 10:
        return (datetime.fromisoformat(text).date() + SHIFT).isoformat()
    moved = datetime.fromisoformat(text.replace("Z", "+00:00")) + SHIFT
    return moved.isoformat().replace("+00:00", "Z") if text.endswith("Z") else moved.isoformat()


def at(*args: int) -> datetime:
    """datetime(2026, 12, 7, 14, 0) in UTC, moved to the tests' calendar."""
    return datetime(*args, tzinfo=timezone.utc) + SHIFT


class Clock:
    """An injectable clock the tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


def local(day: str, hhmm: str, zone: str = "America/New_York") -> datetime:
    """A wall-clock time in a zone, as aware UTC."""
    naive = datetime.fromisoformat(f"{day}T{hhmm}")
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_config(container, data: dict) -> dict:
    from services.config import apply_config as apply

    with container.uow() as uow:
        counts = apply(uow, data)
        uow.commit()
    return counts


def claim_next_task(container) -> tuple[str, dict] | None:
    """The oldest task-outbox row not yet sent, marked sent as the dispatcher would:
    (task name, kwargs), or None when the outbox is empty."""
    from models import TaskOutbox

    with container.session_factory() as db:
        row = db.query(TaskOutbox).filter(TaskOutbox.dispatched_at.is_(None)).order_by(TaskOutbox.id).first()
        if row is None:
            return None
        name, kwargs = row.task_name, dict(row.kwargs)
        db.execute(update(TaskOutbox).where(TaskOutbox.id == row.id).values(dispatched_at=container.clock()))
        db.commit()
    return name, kwargs


_OVERRIDES: dict[int, tuple[weakref.ref, dict[str, Callable]]] = {}


def override_tasks(container, handlers: dict[str, Callable]) -> None:
    """Run these bodies (fn(container, **kwargs)) instead of the registry's for this container's
    tasks in `drain()`: a test's stand-in for a task, or a public task (those are not in the
    registry). Adds to what the container already overrides."""
    ref, current = _OVERRIDES.get(id(container), (None, {}))
    current = dict(current) if ref is not None and ref() is container else {}
    _OVERRIDES[id(container)] = (weakref.ref(container), {**current, **handlers})


# The public tasks a frontend or the web process enqueues (not in the task registry).
PUBLIC_TASKS = ("sessionpack.cancel_sessions", "sessionpack.reschedule_session", "sessionpack.refund_booking",
                "sessionpack.approve_booking", "sessionpack.decline_booking")


def run_public(c, name: str, kwargs: dict, task_id: str | None = None) -> dict:
    """A public task's Celery body (its grant checked), in this process, on this container."""
    import uuid

    import tasks  # noqa: F401  (registers the tasks)
    from core.wiring import set_container
    from worker.app import app

    set_container(c)
    try:
        return app.tasks[name].apply(kwargs=kwargs, task_id=task_id or uuid.uuid4().hex, throw=True).get()
    finally:
        set_container(None)


def run_public_tasks_here(container, names=PUBLIC_TASKS, answers: list | None = None):
    """Have `drain()` run these public tasks' real bodies when the container enqueues them,
    each answer appended to `answers` when given. Returns the container."""
    def body(name: str) -> Callable:
        def run(c, **kwargs):
            answer = run_public(c, name, kwargs)
            if answers is not None:
                answers.append(answer)
            return answer
        return run

    override_tasks(container, {name: body(name) for name in names})
    return container


def on_localstripe(container, stripe_url: str, api_key: str):
    """The container's Stripe client pointed at a reset localstripe. Returns the container."""
    from services.devtools.localstripe import reset

    reset(stripe_url)
    container.settings = container.settings.replace(stripe_api_key=api_key, stripe_api_base=stripe_url)
    return container


def overridden_tasks(container) -> dict[str, Callable]:
    ref, handlers = _OVERRIDES.get(id(container), (None, {}))
    return handlers if ref is not None and ref() is container else {}


def default_task_handlers() -> dict[str, Callable]:
    """Every body of the task registry (services/task_registry.py) by task name, webhooks posted
    in-process when a test sets `container.webhook_post` to receive them."""
    from services import webhooks
    from services.task_registry import TASKS

    return {**{name: body.fn for name, body in TASKS.items()},
            webhooks.DELIVER_TASK: lambda c, ids=None, booking_ids=None: webhooks.deliver(
                c, ids, post=getattr(c, "webhook_post", None))}


def drain(container, max_rounds: int = 200, on_task: Callable | None = None) -> list[str]:
    """Run the task outbox in-process, in order, until it is empty: the saga's logic without
    Celery (queue behaviour itself is tested with a real worker elsewhere). A saga step that
    raises fails its booking, as the task decides once retries are out (tasks/base.py)."""
    from services.booking import fail_booking
    from services.task_registry import TASKS

    ran = []
    for _ in range(max_rounds):
        claimed = claim_next_task(container)
        if claimed is None:
            return ran
        name, kwargs = claimed
        ran.append(name)
        if on_task:
            on_task(name, kwargs)
        step = TASKS[name].saga_step if name in TASKS else None
        if step is not None:
            try:
                TASKS[name].fn(container, **kwargs)
            except Exception as exc:  # the task's decision: permanent or out of retries -> fail
                fail_booking(container, kwargs["booking_id"], step, exc)
            continue
        body = {**default_task_handlers(), **overridden_tasks(container)}.get(name)
        if body is None:
            raise AssertionError(f"drain() does not know task {name}")
        body(container, **kwargs)
    raise AssertionError("task outbox did not drain")


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def package_config(n: int = 3, *, price: str | None = None, provider: str = "builtin", slug: str = "pkg",
                   cancel: dict | None = None, reschedule: dict | None = None, reminders: list | None = None,
                   min_notice_minutes: int = 60, buffer_after_minutes: int = 0, zone: str = "America/New_York") -> dict:
    """A page `coach` with one event type of `n` sessions, open 08:00-20:00 every day."""
    et = {
        "slug": slug, "name": f"Coaching, {n} sessions", "duration_minutes": 60,
        "scheduling": {"sessions_per_booking": n, "min_notice_minutes": min_notice_minutes,
                       "buffer_after_minutes": buffer_after_minutes, "slot_interval_minutes": 30},
        "conferencing": {"provider": provider},
        "policies": {"cancel": cancel or {"allowed": True, "min_notice_hours": 24, "refund_percent": 50},
                     "reschedule": reschedule or {"allowed": True, "min_notice_hours": 24, "fee_percent": 10}},
        "reminders": reminders if reminders is not None else [{"before_minutes": 1440}, {"before_minutes": 60}],
    }
    if price is not None:
        et["payment"] = {"price": price, "currency": "USD"}
    return {
        "owners": [{"id": "kim", "name": "Kim Coach", "email": "kim@example.com", "timezone": zone}],
        "booking_pages": [{
            "slug": "coach", "owner": "kim", "name": "Coaching with Kim", "timezone": zone,
            "availability": {"weekly": {d: [["08:00", "20:00"]] for d in WEEKDAYS}},
            "event_types": [et],
        }],
    }


def daily_slots(first_day: datetime, n: int, hhmm: str = "10:00", zone: str = "America/New_York") -> list[str]:
    """n slots at the same wall time on consecutive days from first_day (a date in `zone`)."""
    day = first_day.date() if isinstance(first_day, datetime) else first_day
    return [iso(local((day + timedelta(days=i)).isoformat(), hhmm, zone)) for i in range(n)]


def booking_request(slots: list[str], *, request_id: str | None = None, event_type: str = "pkg",
                    payment_method: str | None = None, email: str = "sam@example.org", name: str = "Sam Lee") -> dict:
    req = {
        "request_id": request_id or f"req-{secrets.token_hex(6)}",
        "booking_page": "coach", "event_type": event_type,
        "customer": {"name": name, "email": email, "timezone": "Europe/Berlin"},
        "slots": slots,
    }
    if payment_method:
        req["payment_method"] = payment_method
    return req


class InlineCelery:
    """Stands in for the broker and a worker: runs each task sent (the CLI's public task with the
    id the CLI gave it, so the task's own code derives the change key) in this process."""

    def __init__(self, c):
        self.c, self.sent = c, []

    def send_task(self, name, kwargs=None, task_id=None, **_):
        import tasks  # noqa: F401  (registers the tasks)
        from worker.app import app

        self.sent.append(name)
        app.tasks[name].apply(kwargs=kwargs, task_id=task_id, throw=True)
        drain(self.c)


@contextlib.contextmanager
def inline_cli(container) -> Iterator[Callable]:
    """`sessionpack` commands in-process on `container`, their tasks run at once (InlineCelery,
    as `container.celery_app`): yields run(*args) -> (exit code, the printed JSON or None)."""
    from click.testing import CliRunner

    from cli.main import main
    from core.wiring import set_container

    container.celery_app = InlineCelery(container)
    set_container(container)
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None

    try:
        yield run
    finally:
        set_container(None)
