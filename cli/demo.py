"""`sessionpack demo`: the whole life of a session package, end to end, on this machine.

It applies an example configuration (a 3-session package for 150.00 USD with Jitsi Meet
conferencing, 50 % refund on cancellation and a 10 % rescheduling fee, both with 24 hours'
notice), starts what is missing (localstripe when no STRIPE_API_KEY is set, a Celery worker when
none takes tasks from the broker), books the package through the queue, cancels one session
(25.00 refunded) and reschedules another (5.00 fee), then stops what it started and sums up.

Every step runs the real `sessionpack` command in a subprocess, as a user would, against the
same settings (./var or SESSIONPACK_VAR_DIR, DATABASE_URL, BROKER_URL): the demo shows the
public interface, not a shortcut beside it. Each run books with a new request_id and the next
free slots, so it can run again and again.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from services.devtools.processes import child_process
from services.errors import OperationFailed

PAGE, EVENT_TYPE = "demo", "package-3"
OWNER_ZONE = "America/New_York"
CUSTOMER = {"name": "Sam Lee", "email": "sam@example.org", "timezone": "Europe/Berlin"}
STRIPE_TEST_KEY = "sk_test_sessionpack_demo"
STEP_TIMEOUT_SECONDS = 120.0
WORKER_START_SECONDS = 60.0
# How long a running worker may take to pick up the probe task before we start our own.
PROBE_SECONDS = 3.0
PROBE_TASK = "sessionpack.sweep_outboxes"  # harmless and idempotent: it only sends what is due

Say = Callable[[str], None]


class DemoFailed(OperationFailed):
    """A step of the demo failed; the message names the step and what it printed."""


def demo_config() -> dict:
    """A coach open 09:00-17:00 every day, with one event type: 3 sessions for 150.00 USD."""
    return {
        "owners": [{"id": "demo-coach", "name": "Dana Demo", "email": "dana@example.com", "timezone": OWNER_ZONE}],
        "booking_pages": [{
            "slug": PAGE, "owner": "demo-coach", "name": "Coaching with Dana (demo)", "timezone": OWNER_ZONE,
            "availability": {"weekly": {day: [["09:00", "17:00"]] for day in
                                        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
            "event_types": [{
                "slug": EVENT_TYPE, "name": "Coaching package, 3 sessions", "duration_minutes": 60,
                "scheduling": {"booking_mode": "automatic", "sessions_per_booking": 3,
                               "min_notice_minutes": 60, "slot_interval_minutes": 60},
                "conferencing": {"provider": "jitsi"},
                "payment": {"price": "150.00", "currency": "USD"},
                "policies": {"cancel": {"allowed": True, "min_notice_hours": 24, "refund_percent": 50},
                             "reschedule": {"allowed": True, "min_notice_hours": 24, "fee_percent": 10}},
                "reminders": [{"before_minutes": 1440}, {"before_minutes": 60}],
            }],
        }],
    }


# -- running the CLI -----------------------------------------------------------------------------


def _cli_command() -> list[str]:
    script = Path(sys.executable).parent / "sessionpack"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from cli.main import main; main()"]


def run_cli(env: dict, *args: str, stdin: str | None = None, timeout: float = STEP_TIMEOUT_SECONDS) -> dict:
    """Run `sessionpack ARGS`; its JSON output, or DemoFailed with its error and messages."""
    # Not subprocess.run: a Ctrl-C while it starts the child would leave the child running.
    with child_process([*_cli_command(), *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True) as proc:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        out = {}
    if proc.returncode != 0:
        error = out.get("error") or out.get("failure") or {}
        reason = error.get("message") or proc.stderr.strip()[-800:] or f"exit code {proc.returncode}"
        raise DemoFailed("demo_step_failed", f"`sessionpack {' '.join(args[:2])}` failed: {reason}")
    return out


def child_env(settings, **extra: str) -> dict:
    """The environment of every process the demo starts: the same state, broker and database."""
    env = dict(os.environ)
    env.update(SESSIONPACK_VAR_DIR=str(settings.var_dir), DATABASE_URL=settings.database_url,
               BROKER_URL=settings.broker_url, PYTHONUNBUFFERED="1", **extra)
    return env


# -- what the demo starts ------------------------------------------------------------------------


@contextlib.contextmanager
def stripe_server(settings, say: Say) -> Iterator[dict]:
    """The Stripe settings to use: the configured ones, or a localstripe started for the demo."""
    if settings.stripe_api_key:
        say(f"      using the configured Stripe API at {settings.stripe_api_base or 'https://api.stripe.com'}")
        yield {}
        return
    from services.devtools.localstripe import running_localstripe

    with running_localstripe() as base_url:
        say(f"      started localstripe (a local Stripe test server) at {base_url}")
        try:
            yield {"STRIPE_API_KEY": STRIPE_TEST_KEY, "STRIPE_API_BASE": base_url}
        finally:
            say("      stopping localstripe")


def worker_consuming(c) -> bool:
    """Whether some worker takes tasks from this broker. The SQLite broker has no broadcast to
    ping workers with, so: send a harmless task and see whether the queue gives it up."""
    from .doctor import default_queue, queue_length

    queue = default_queue(c)
    before = queue_length(c.settings.broker_url, queue)
    c.celery_app.send_task(PROBE_TASK)
    deadline = time.monotonic() + PROBE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if queue_length(c.settings.broker_url, queue) <= before:
            return True
    return False


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """TERM the worker (a warm shutdown: it stops its own pool), then KILL whatever is left of its
    process group: a hung worker, or a pool process that outlived it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group is ours alone: started with its own session
    except ProcessLookupError:
        pass  # nothing left: the usual case
    proc.wait(10)


def _wait_ready(proc: subprocess.Popen, log_path: Path, out_path: Path) -> None:
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoFailed("worker_failed",
                             f"the worker exited with {proc.returncode} at start; see {out_path} and {log_path}")
        if log_path.exists() and " ready." in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise DemoFailed("worker_failed", f"the worker was not ready after {WORKER_START_SECONDS:g}s; see {log_path}")


@contextlib.contextmanager
def demo_worker(env: dict, state_dir: Path, say: Say) -> Iterator[None]:
    """A Celery worker (concurrency 2) for the demo, stopped on the way out whatever happens."""
    log_path, out_path = state_dir / "worker.log", state_dir / "worker.out"
    log_path.unlink(missing_ok=True)
    args = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO", "--concurrency=2",
            "-n", f"demo-{os.getpid()}@%h", "--without-mingle", "--without-gossip", f"--logfile={log_path}"]
    def stop(proc: subprocess.Popen) -> None:
        say(f"      stopping the worker (pid {proc.pid})")
        _stop_group(proc)

    # Its own session: a Ctrl-C at the terminal reaches us, and we stop it in order.
    with open(out_path, "ab") as out, child_process(args, stop=stop, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                                    stderr=subprocess.STDOUT, start_new_session=True) as proc:
        say(f"      started a Celery worker (pid {proc.pid}, concurrency 2); its JSON logs: {log_path}")
        _wait_ready(proc, log_path, out_path)
        yield


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP interrupt the demo like Ctrl-C, so that it still stops what it started."""
    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# -- the story -----------------------------------------------------------------------------------


def _first_per_day(slots: list[str], n: int, skip_days: set[str] = frozenset()) -> list[str]:
    """The first free slot of each of the first `n` days not in `skip_days` (dates as YYYY-MM-DD)."""
    chosen, days = [], set(skip_days)
    for slot in slots:
        if slot[:10] not in days:
            chosen.append(slot)
            days.add(slot[:10])
        if len(chosen) == n:
            return chosen
    raise DemoFailed("no_free_slots", f"fewer than {n} free days in the next two weeks on {PAGE}/{EVENT_TYPE}; "
                     f"cancel earlier demo bookings or remove the demo state directory")


def free_slots(env: dict, now: datetime) -> list[str]:
    # From two days ahead: the 24-hour cancel and reschedule windows stay open during the demo.
    first = (now + timedelta(days=2)).date()
    return run_cli(env, "slots", f"{PAGE}/{EVENT_TYPE}", "--from", first.isoformat(),
                   "--to", (first + timedelta(days=13)).isoformat(), "--tz", "UTC")["slots"]


def token_of(session: dict) -> str:
    """The customer's manage token: the last path segment of the session's manage_url."""
    return session["manage_url"].rstrip("/").rsplit("/", 1)[-1]


def book(env: dict, now: datetime, say: Say) -> dict:
    slots = _first_per_day(free_slots(env, now), 3)
    request = {"request_id": f"demo-{secrets.token_hex(6)}", "booking_page": PAGE, "event_type": EVENT_TYPE,
               "customer": CUSTOMER, "slots": slots, "payment_method": "pm_card_visa"}
    say(f"      request {request['request_id']}: {', '.join(slots)}, paid with Stripe's test card pm_card_visa")
    booking = run_cli(env, "book", "-", "--wait", str(int(STEP_TIMEOUT_SECONDS)), stdin=json.dumps(request))
    say(f"      {booking['id']} is {booking['status']}: {len(booking['sessions'])} sessions, "
        f"paid {booking['paid']} {booking['currency']}")
    return booking


def cancel_first(env: dict, booking: dict, say: Say) -> dict:
    session = booking["sessions"][0]
    say(f"      sessionpack cancel {session['id']} --token <its manage token>")
    after = run_cli(env, "cancel", session["id"], "--token", token_of(session), "--reason", "demo: plans changed",
                    "--wait", str(int(STEP_TIMEOUT_SECONDS)))
    say(f"      session #1 cancelled: refund {_diff(after, booking, 'refunded')} {after['currency']} (50 % of its "
        f"{session['relative_cost']})")
    return after


def reschedule_second(env: dict, booking: dict, now: datetime, say: Say) -> dict:
    session = booking["sessions"][1]
    taken = {s["start"][:10] for s in booking["sessions"]}
    to = _first_per_day(free_slots(env, now), 1, skip_days=taken)[0]
    say(f"      sessionpack reschedule {session['id']} --to {to} --token <its manage token>")
    after = run_cli(env, "reschedule", session["id"], "--to", to, "--token", token_of(session),
                    "--wait", str(int(STEP_TIMEOUT_SECONDS)))
    say(f"      session #2 moved from {session['start']} to {to}: fee {_diff(after, booking, 'fees')} "
        f"{after['currency']} (10 % of its {session['relative_cost']})")
    return after


def _diff(after: dict, before: dict, field: str) -> str:
    return f"{Decimal(after[field]) - Decimal(before[field]):.2f}"


def wait_for_emails(c, booking_id: str, seconds: float = 60.0) -> list:
    """The booking's outbox emails once none is waiting any more (or time ran out)."""
    from models import OutboxEmail

    deadline = time.monotonic() + seconds
    while True:
        with c.session_factory() as db:
            rows = db.query(OutboxEmail).filter(OutboxEmail.booking_id == booking_id).order_by(OutboxEmail.id).all()
            db.expunge_all()
        if all(r.status not in ("pending", "sending") for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def save_calendar_files(rows: list, customer_email: str, target: Path) -> list[Path]:
    """Write the calendar files the customer received, in the order they were sent."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for number, row in enumerate((r for r in rows if r.to_addr == customer_email), start=1):
        for attachment in row.attachments or []:
            path = target / f"{number:02d}-{row.kind}-{attachment['filename']}"
            path.write_text(attachment["content"], encoding="utf-8")
            written.append(path)
    return written


# -- the summary ---------------------------------------------------------------------------------


def _local(iso: str, zone: str) -> str:
    at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{at:%a %d %b %Y %H:%M} {zone}"


def _session_lines(booking: dict) -> list[str]:
    lines = []
    for s in booking["sessions"]:
        link = (s.get("conferencing") or {}).get("join_url") or "no meeting"
        lines.append(f"  session #{s['number']}  {s['status']:<9}  {_local(s['start'], OWNER_ZONE)}  "
                     f"{link if s['status'] == 'confirmed' else ''}".rstrip())
    return lines


def _page_lines(booking: dict) -> list[str]:
    """The customer's own pages, served by the web process (`bash scripts/run.sh` starts it)."""
    confirmed = [s for s in booking["sessions"] if s["status"] == "confirmed"]
    if not confirmed:
        return []
    s = confirmed[-1]
    return ["Open in a browser (the web process serves them at PUBLIC_BASE_URL):",
            f"  cancel or reschedule: {s['manage_url']}",
            f"  meeting details:      {s['conferencing_info_url']}"]


def _money_lines(booking: dict) -> list[str]:
    net = Decimal(booking["paid"]) + Decimal(booking["fees"]) - Decimal(booking["refunded"])
    return [
        f"Money ({booking['currency']}): paid {booking['paid']}, refunded {booking['refunded']}, "
        f"fees {booking['fees']}, net {net:.2f}",
        f"  refund {booking['refunded']} for the cancelled session #1, fee {booking['fees']} for moving session #2",
    ]


def _file_lines(emails: list[Path], sent: int, calendar_files: list[Path], settings) -> list[str]:
    if settings.smtp_url:
        lines = [f"Emails: {sent} sent through SMTP_URL"]
    else:
        lines = [f"Emails (.eml files) in {settings.outbox_dir}:", *(f"  {path.name}" for path in emails)]
    if calendar_files:
        lines.append(f"Calendar files the customer received, in {calendar_files[0].parent}:")
        lines += [f"  {path.name}" for path in calendar_files]
    return lines


def summary(booking: dict, rows: list, calendar_files: list[Path], settings) -> str:
    """A readable account of the booking: sessions, links, money, and where the files are."""
    customer = booking["customer"]
    sent = [r for r in rows if r.status == "sent"]
    return "\n".join([
        "", f"Booking {booking['id']} ({booking['status']}), {customer['name']} <{customer['email']}>:",
        *_session_lines(booking), *_money_lines(booking), *_page_lines(booking),
        *_file_lines(eml_files(settings, sent), len(sent), calendar_files, settings),
        "", f"Next: sessionpack show {booking['id']}  |  sessionpack activity --booking {booking['id']}",
    ])


def eml_files(settings, rows: list) -> list[Path]:
    """Where the file outbox wrote these emails (none when SMTP delivers them)."""
    from services.notifications.sender import FileOutboxSender

    if settings.smtp_url:
        return []
    outbox = FileOutboxSender(settings.outbox_dir)
    return [path for path in (outbox.path_for(r.message_id) for r in rows) if path.exists()]


# -- the whole run -------------------------------------------------------------------------------


def _refuse_live_keys(settings) -> None:
    if (settings.stripe_api_key or "").startswith(("sk_live_", "rk_live_")):
        raise DemoFailed("live_stripe_key", "the demo makes payments and STRIPE_API_KEY is a live key; "
                         "unset it (the demo then starts a local Stripe test server) or use an sk_test_ key")


def _configure(env: dict, state_dir: Path, say: Say) -> None:
    say("[1/6] database schema: sessionpack migrate")
    run_cli(env, "migrate")
    config_path = state_dir / "config.json"
    config_path.write_text(json.dumps(demo_config(), indent=2))
    say(f"[2/6] configuration: sessionpack config apply {config_path}\n"
        f"      page {PAGE}/{EVENT_TYPE}: 3 sessions of 60 min for 150.00 USD, Jitsi Meet rooms,\n"
        "      cancel: 50 % refund with 24 h notice; reschedule: 10 % fee with 24 h notice")
    run_cli(env, "config", "apply", str(config_path))


def _ensure_worker(c, env: dict, state_dir: Path, started_stripe: bool, running: contextlib.ExitStack,
                   say: Say) -> None:
    say("[4/6] worker")
    if not worker_consuming(c):
        running.enter_context(demo_worker(env, state_dir, say))
        return
    if started_stripe:
        raise DemoFailed("worker_already_running", (
            "a worker already takes tasks from this broker, but it does not know the local Stripe "
            "server the demo started; stop that worker and run `sessionpack demo` again (it starts "
            "its own), or give both STRIPE_API_KEY and STRIPE_API_BASE"))
    say("      a worker is already running on this broker: using it")


def _story(c, env: dict, say: Say) -> tuple[dict, list]:
    """Book, cancel, reschedule; the final booking object and its emails once delivered."""
    now = c.clock()
    say("[5/6] booking 3 sessions through the queue: sessionpack book - --wait")
    booking = book(env, now, say)
    say("[6/6] the sessions' own lives")
    booking = cancel_first(env, booking, say)
    booking = reschedule_second(env, booking, now, say)
    say("      waiting for the emails to be delivered")
    rows = wait_for_emails(c, booking["id"])
    return run_cli(env, "show", booking["id"]), rows


def run_demo(c, say: Say) -> dict:
    """Run the demo on container `c`'s settings; returns the final booking object. Whatever
    happens (an error, Ctrl-C, SIGTERM), the worker and localstripe it started are stopped."""
    settings = c.settings
    _refuse_live_keys(settings)
    state_dir = settings.var_dir / "demo"
    state_dir.mkdir(parents=True, exist_ok=True)
    say(f"sessionpack demo: state in {settings.var_dir}")
    env = child_env(settings)
    _configure(env, state_dir, say)
    with signals_interrupt(), contextlib.ExitStack() as running:
        say("[3/6] payments")
        stripe_env = running.enter_context(stripe_server(settings, say))
        env.update(stripe_env)
        _ensure_worker(c, env, state_dir, bool(stripe_env), running, say)
        booking, rows = _story(c, env, say)
    calendar_files = save_calendar_files(rows, booking["customer"]["email"], state_dir / booking["id"])
    say(summary(booking, rows, calendar_files, settings))
    return booking
