"""`sessionpack doctor`: is everything this service needs there and healthy?

Each check answers `Check(name, ok, detail)` and never raises: a failure is a check that is not
ok, with a detail that says what is wrong and what to do. A check that depends on the database
is reported as not ok (unknown) when the database is not usable. Optional integrations that
are not configured are ok: they are simply not used.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Callable

# How long the broker and PostgreSQL may take to answer before doctor calls them unreachable.
CONNECT_TIMEOUT_SECONDS = 5
# A task-outbox row normally leaves within milliseconds of its commit; a minute means stuck.
TASK_OUTBOX_GRACE = timedelta(minutes=1)
PROVIDER_SETTINGS = {
    "zoom": "ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET",
    "webex": "WEBEX_TOKEN",
    "gotomeeting": "GOTO_TOKEN",
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # Not a failure (doctor still exits 0), but something an operator should change.
    warning: bool = False

    def as_json(self) -> dict:
        return asdict(self)


def _describe(exc: BaseException) -> str:
    """A one-line reason: our errors' message, else the exception's first line."""
    message = getattr(exc, "message", None) or str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return " ".join(message.split())[:400]


def _run(name: str, check: Callable[[], tuple], redact: Callable[[str], str],
         hint: str | None = None) -> Check:
    """Run one check; an exception is a failed check whose detail is the reason (and the hint).
    A check answers (ok, detail) or (ok, detail, warning)."""
    warning = False
    try:
        ok, detail, *rest = check()
        warning = bool(rest and rest[0])
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, not a crash
        ok, detail = False, _describe(exc) + (f"; {hint}" if hint else "")
    return Check(name, ok, redact(detail), warning)


# -- the checks ----------------------------------------------------------------------------------


def database(c) -> tuple[bool, str]:
    from models.db import schema_status

    current, head = schema_status(c.engine)
    if current != head:
        return False, (f"reachable, but the schema is at {current or 'nothing'} and the code needs {head}; "
                       "run `sessionpack migrate`")
    return True, f"reachable, schema at head ({head})"


def queue_length(broker_url: str, queue: str = "celery") -> int:
    """Connect to the broker once (no retry loop) and read a queue's length by declaring it,
    as any worker would. Raises the transport's error when the broker cannot be reached."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, interval_max=1,
                               timeout=CONNECT_TIMEOUT_SECONDS)
        with conn.channel() as channel:
            return channel.queue_declare(queue=queue).message_count


def default_queue(c) -> str:
    return c.celery_app.conf.task_default_queue if c.celery_app is not None else "celery"


def broker(c) -> tuple[bool, str]:
    queue = default_queue(c)
    waiting = queue_length(c.settings.broker_url, queue)
    return True, f"reachable at {c.settings.broker_url}; {waiting} message(s) waiting in queue {queue!r}"


def broker_durability(broker_url: str) -> tuple[bool, str, bool]:
    """Would the broker lose queued messages on a restart? (ok, detail, warning). Redis is asked
    for its persistence settings (CONFIG GET appendonly / save)."""
    scheme = broker_url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(broker_url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                      socket_timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            aof = client.config_get("appendonly").get("appendonly")
            fsync = client.config_get("appendfsync").get("appendfsync")
            save = (client.config_get("save").get("save") or "").strip()
        except redis.ResponseError as exc:  # CONFIG disabled or not granted (managed Redis, ACL)
            return True, (f"Redis did not say how it persists ({_describe(exc)}); make sure it runs with "
                          "appendonly yes, or messages queued in it are lost when it restarts"), True
        finally:
            client.close()
        if aof == "yes":
            return True, f"Redis keeps an append-only file (appendfsync {fsync}): queued messages survive a restart", False
        lost = ("requests the CLI or the HTTP API accepted are stored and published again by beat, but messages "
                "frontends publish straight to the broker are lost; run Redis with --appendonly yes "
                "--appendfsync everysec (as docker-compose.yml does)")
        if save:
            return True, (f"Redis only snapshots (save {save!r}, appendonly no): messages queued since the last "
                          f"snapshot are lost when it restarts; {lost}"), True
        return True, (f"Redis keeps queued messages in memory only (appendonly no, no save points): a restart "
                      f"loses every one; {lost}"), True
    if scheme.startswith("amqp") or scheme == "pyamqp":
        return True, "RabbitMQ: durable queues, persistent messages and publisher confirms", False
    if scheme.startswith("sqla"):
        return True, "the embedded broker keeps its messages in its database file", False
    return True, f"persistence of a {scheme!r} broker is not checked", True


def booking_intake(c) -> tuple[bool, str]:
    """Accepted booking requests that no worker has picked up for three stall periods: beat's
    sweep publishes them again each period, so they wait for a worker (or a broker) that is not
    there."""
    from services.booking.intake import waiting

    patience = timedelta(seconds=3 * c.settings.saga_stall_seconds)
    with c.session_factory() as db:
        count, oldest = waiting(db, c.clock(), patience)
    if count:
        return False, (f"{count} accepted booking request(s) not picked up by a worker for more than "
                       f"{int(patience.total_seconds())} s (oldest: request_id {oldest}); check that the worker and "
                       "beat run and reach the broker")
    return True, "every accepted request was picked up"


def task_outbox(c) -> tuple[bool, str]:
    from models import TaskOutbox

    with c.session_factory() as db:
        stuck = db.query(TaskOutbox).filter(
            TaskOutbox.dispatched_at.is_(None), TaskOutbox.created_at < c.clock() - TASK_OUTBOX_GRACE
        ).count()
    if stuck:
        return False, (f"{stuck} task(s) waiting more than a minute to be enqueued; check the broker, "
                       "and that beat runs (its sweep-outboxes task enqueues them)")
    return True, "nothing waiting"


def email_outbox(c) -> tuple[bool, str]:
    from services.notifications.outbox import backlog

    with c.session_factory() as db:
        counts = backlog(db, c.clock())
    detail = f"{counts['pending']} pending, {counts['overdue']} overdue (over 5 minutes), {counts['failed']} failed"
    if counts["failed"]:
        return False, detail + "; failed emails keep their error in outbox_emails.last_error"
    if counts["overdue"]:
        return False, detail + "; check the email check below, the worker and beat"
    return True, detail


def email_retention(c) -> tuple[bool, str]:
    from services.notifications.outbox import retention

    days = c.settings.email_body_retention_days
    with c.session_factory() as db:
        counts = retention(db, c.clock(), days)
    detail = (f"bodies emptied {days:g} days after delivery (EMAIL_BODY_RETENTION_DAYS); "
              f"{counts['purged']} emptied so far")
    if counts["overdue"]:
        return False, (f"{counts['overdue']} email(s) still hold their body more than a day past retention; "
                       "check that beat runs (its purge-email-bodies task empties them)")
    return True, detail


def webhook_outbox(c) -> tuple[bool, str]:
    from services.webhooks import backlog

    with c.session_factory() as db:
        counts = backlog(db, c.clock())
    detail = f"{counts['pending']} pending, {counts['overdue']} waiting over an hour, {counts['failed']} given up"
    if counts["failed"]:
        return False, detail + ("; `sessionpack webhooks list --status failed` shows them with their last error, "
                                "`sessionpack webhooks redeliver EVENT_ID` sends one again")
    if counts["overdue"]:
        # Still being retried (for 3 days): worth a look, not yet a failure.
        return True, detail + "; a receiver is failing or the worker and beat are not running"
    return True, detail


def reminders(c) -> tuple[bool, str]:
    from services.notifications.reminders import overdue_count

    with c.session_factory() as db:
        late = overdue_count(db, c.clock())
    if late:
        return False, f"{late} reminder(s) due more than 5 minutes ago and not sent; check that beat runs"
    return True, "none overdue"


def orphaned_meetings(c) -> tuple[bool, str]:
    """Meetings a rollback could not delete (the provider refused for good): left to remove by hand."""
    from models import Meeting

    with c.session_factory() as db:
        rows = db.query(Meeting.provider, Meeting.external_id).filter(Meeting.status == "orphaned").limit(20).all()
    if rows:
        listed = ", ".join(f"{provider} {external_id}" for provider, external_id in rows)
        return False, f"meetings left at the provider by a rollback: {listed}; delete them there by hand"
    return True, "none"


def stalled_bookings(c) -> tuple[bool, str]:
    """Bookings still `pending` longer than the saga's stall time: a workflow that does not move
    (no worker, a step or a compensation that keeps failing)."""
    from models import Booking

    stall = timedelta(seconds=c.settings.saga_stall_seconds)
    with c.session_factory() as db:
        query = db.query(Booking.id, Booking.saga_step, Booking.created_at).filter(
            Booking.status == "pending", Booking.created_at < c.clock() - stall)
        count, rows = query.count(), query.order_by(Booking.created_at).limit(10).all()
    if count:
        listed = ", ".join(f"{booking_id} (at {step})" for booking_id, step, _ in rows)
        return False, (f"{count} booking(s) pending for more than {stall.total_seconds():g}s: {listed}"
                       f"{' ...' if count > len(rows) else ''}; check that a worker and beat run, and "
                       "`sessionpack activity --booking ID` for the step that keeps failing")
    return True, f"none pending for more than {stall.total_seconds():g}s"


def uncancelled_authorizations(c) -> tuple[bool, str]:
    """Authorizations a rollback could not cancel: never captured, so nothing was charged, and
    Stripe lets them lapse; cancel them in Stripe's dashboard to free the customer's funds sooner."""
    from models import Payment

    with c.session_factory() as db:
        rows = db.query(Payment.booking_id, Payment.intent_id).filter(Payment.status == "cancel_failed").limit(20).all()
    if rows:
        listed = ", ".join(f"{booking_id} ({intent_id or 'intent unknown'})" for booking_id, intent_id in rows)
        return False, (f"authorizations a rollback could not cancel: {listed}; nothing was captured; cancel "
                       "them in Stripe's dashboard")
    return True, "none"


def priced_event_types(c) -> list[str]:
    """page/event-type of every active event type with a price."""
    from sqlalchemy import select

    from models.catalog import EventType

    with c.session_factory() as db:
        rows = db.execute(select(EventType.page_slug, EventType.slug).where(
            EventType.active.is_(True), EventType.price_cents > 0).order_by(EventType.page_slug, EventType.slug))
        return [f"{page}/{slug or '-'}" for page, slug in rows]


def email(c) -> tuple[bool, str]:
    c.email_sender.check()
    if c.settings.smtp_url:
        return True, f"{c.email_sender!r} answered NOOP"
    return True, f"SMTP_URL not set: emails are written to {c.settings.outbox_dir}, which is writable"


def stripe(c) -> tuple:
    if not c.settings.stripe_api_key:
        try:
            priced = priced_event_types(c)
        except Exception:  # noqa: BLE001 - the database check reports that
            priced = []
        if priced:
            # A warning, not a failure: the worker may have the key where this shell has not.
            return True, (f"not configured (STRIPE_API_KEY unset) here, while {', '.join(priced[:10])} "
                          "have a price: a worker without the key refuses their bookings (payment_unavailable)"), True
        return True, "not configured (STRIPE_API_KEY unset): event types with a price cannot be booked"
    c.payments.check()
    return True, f"{c.settings.stripe_api_base or 'https://api.stripe.com'} accepted the key"


def conferencing_provider(provider) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        provider.check()
        return True, "no API to call (unique room links)" if not provider.remote else "credentials work"

    return check


def providers_in_use(c) -> set[str]:
    """Conferencing providers named by active event types (pages without event types included)."""
    from sqlalchemy import select

    from models.catalog import EventType

    with c.session_factory() as db:
        rows = db.execute(select(EventType.conferencing_provider).where(EventType.active.is_(True)).distinct())
        return {name for (name,) in rows if name and name != "none"}


def providers_configured(c, configured: set[str]) -> tuple[bool, str]:
    """A provider that event types use but that has no credentials fails every such booking."""
    used = providers_in_use(c)
    missing = sorted(used - configured)
    if missing:
        return False, "; ".join(f"event types use {name}, but it is not configured: set "
                                f"{PROVIDER_SETTINGS.get(name, 'its settings')}" for name in missing)
    return True, f"every provider event types use is configured ({', '.join(sorted(used)) or 'none used'})"


def calendars(c) -> list[Check]:
    """The owners' calendars (CalDAV) and their sync, as services.calendar checks them."""
    from services.calendar import check_calendars

    try:
        return [Check(e["name"], bool(e["ok"]), e["detail"]) for e in check_calendars(c)]
    except Exception as exc:  # noqa: BLE001 - a finding, like every other check
        return [Check("calendars", False, _describe(exc))]


# -- all together --------------------------------------------------------------------------------


def run_checks(c) -> list[Check]:
    """Every check, in the order an operator would fix things."""
    from worker.logging import Redactor

    # libpq's own connect timeout: a PostgreSQL host that drops packets must not hang doctor.
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_SECONDS))
    redact = Redactor.from_settings(c.settings)
    checks = [
        _run("database", lambda: database(c), redact, "check DATABASE_URL and that the database server runs"),
        _run("broker", lambda: broker(c), redact, "check BROKER_URL and that the broker runs"),
    ]
    if checks[1].ok:
        checks.append(_run("broker durability", lambda: broker_durability(c.settings.broker_url), redact))
    needs_db = (("booking intake", booking_intake), ("task outbox", task_outbox), ("email outbox", email_outbox),
                ("email retention", email_retention), ("webhook outbox", webhook_outbox), ("reminders", reminders),
                ("orphaned meetings", orphaned_meetings), ("stalled bookings", stalled_bookings),
                ("uncancelled authorizations", uncancelled_authorizations))
    for name, check in needs_db:
        if checks[0].ok:
            checks.append(_run(name, lambda check=check: check(c), redact))
        else:
            checks.append(Check(name, False, "not checked: the database is not usable"))
    checks.append(_run("smtp" if c.settings.smtp_url else "email outbox dir", lambda: email(c), redact))
    checks.append(_run("stripe", lambda: stripe(c), redact))
    providers = c.conferencing
    for name in sorted(providers):
        checks.append(_run(f"conferencing {name}", conferencing_provider(providers[name]), redact))
    if checks[0].ok:
        checks.append(_run("conferencing in use", lambda: providers_configured(c, set(providers)), redact))
        checks += [Check(check.name, check.ok, redact(check.detail)) for check in calendars(c)]
    return checks


def table(checks: list[Check]) -> str:
    """The checks as a plain-text table for people."""
    width = max(len(check.name) for check in checks)
    lines = [f"{check.name:<{width}}  {('WARN' if check.warning else 'ok  ') if check.ok else 'FAIL'}  {check.detail}"
             for check in checks]
    return "\n".join(lines)
