"""Abuse: forged and swapped manage tokens, header and HTML injection through names and reasons,
SQL-looking strings, oversized payloads, and secrets in the logs.

Runs on PostgreSQL (a database of its own) with payments through localstripe, the builtin
conferencing provider and the file outbox; the command line through click's CliRunner with a
broker that runs each sent task in this process (the tasks' own code, then the task outbox).
"""
from __future__ import annotations

import email
import email.policy
import io
import json
import logging
import re
import time
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from models import Activity, Base, Booking, LedgerEntry, Session
from services import lifecycle
from services.booking import submit_booking
from services.devtools.localstripe import reset, running_localstripe
from services.errors import InvalidInput, OperationFailed
from services.notifications import outbox
from services.tokens import make_token
from tests.support import START, Clock, on, apply_config, booking_request, daily_slots, iso, local, package_config

from .harness import run_tasks

STRIPE_KEY = "sk_test_sessionpack_abuse_9f8e7d6c"
SECRET_KEY = "abuse-secret-key-5a4b3c2d1e0f-0123456789"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class InlineBroker:
    """The CLI's broker: each task the CLI sends runs here at once (its Celery task body, with the
    id the CLI gave it, on the service container), then the task outbox is run."""

    def __init__(self, service, cli_container):
        self.service, self.cli_container, self.sent = service, cli_container, []

    def send_task(self, name, args=None, kwargs=None, task_id=None, **_):
        import tasks  # noqa: F401  (registers the tasks)
        from worker.app import app
        from core.wiring import set_container

        self.sent.append(name)
        set_container(self.service)  # the task body's container: its follow-ups go to the outbox
        try:
            app.tasks[name].apply(args=args, kwargs=kwargs, task_id=task_id, throw=True)
        finally:
            set_container(self.cli_container)
        run_tasks(self.service)


@pytest.fixture(scope="module")
def stripe_base():
    with running_localstripe() as url:
        yield url


@pytest.fixture(scope="module")
def pg_database():
    from tests.servers import ensure_postgres
    from tests.support import PostgresDatabase

    ensure_postgres()
    db = PostgresDatabase()
    yield db
    db.drop()


@pytest.fixture
def c(tmp_path, pg_database, stripe_base):
    """A container on our PostgreSQL database (emptied), a paid 3-session package, payments
    through localstripe; the CLI runs on a twin container (same engine) whose broker is inline.
    `c.broker.sent` lists what the CLI enqueued."""
    from models.db import migrate
    from tests.conftest import make_settings
    from tests.support import truncate_all
    from core.wiring import build_container, set_container

    reset(stripe_base)
    settings = make_settings(tmp_path, pg_database.url).replace(secret_key=SECRET_KEY, stripe_api_key=STRIPE_KEY,
                       stripe_api_base=stripe_base)
    clock = Clock(START)
    container = build_container(settings, clock=clock)
    migrate(container.engine)
    truncate_all(container.engine)
    apply_config(container, package_config(3, price="150.00"))
    cli_container = build_container(settings, clock=clock)
    cli_container.__dict__["engine"] = container.engine  # one connection pool for both
    # The service container has no broker: its follow-up tasks stay in the outbox for run_tasks.
    container.broker = cli_container.celery_app = InlineBroker(container, cli_container)
    set_container(cli_container)
    yield container
    set_container(None)
    container.engine.dispose()


def cli(*argv, stdin: str | None = None) -> tuple[int, dict | None, object]:
    from cli.main import main

    result = CliRunner().invoke(main, list(argv), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip() else None), result


def book(c, *, name: str = "Sam Lee", hhmm: str = "10:00", days: int = 3, request_id: str | None = None) -> dict:
    request = booking_request(daily_slots(c.clock() + timedelta(days=days), 3, hhmm), payment_method="pm_card_visa",
                              name=name, request_id=request_id)
    booking_id = submit_booking(c, request)
    run_tasks(c)
    code, shown, _ = cli("show", booking_id)
    assert code == 0 and shown["status"] == "confirmed", shown
    return shown


def token_of(session: dict) -> str:
    return session["manage_url"].rsplit("/", 1)[-1]


def state(c) -> dict:
    """Everything a refused change must leave alone: row counts (activity apart), every session's
    status and time, the ledger, and what localstripe holds."""
    import stripe

    with c.engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in Base.metadata.sorted_tables if t.name != "activity"}
    with c.session_factory() as db:
        sessions = sorted((s.id, s.status, s.start_at, s.sequence) for s in db.execute(select(Session)).scalars())
        ledger = sorted((e.idempotency_key, e.status) for e in db.execute(select(LedgerEntry)).scalars())
    client = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": c.settings.stripe_api_base})
    refunds = len(client.v1.refunds.list(params={"limit": 100}).data)
    intents = len(client.v1.payment_intents.list(params={"limit": 100}).data)
    return {"counts": counts, "sessions": sessions, "ledger": ledger, "stripe": (refunds, intents)}


def new_activity(c, since: int) -> list[str]:
    with c.session_factory() as db:
        return [a for (a,) in db.execute(select(Activity.action).where(Activity.id > since).order_by(Activity.id))]


def last_activity_id(c) -> int:
    with c.session_factory() as db:
        return db.execute(select(func.coalesce(func.max(Activity.id), 0))).scalar_one()


# -- forged and swapped tokens ---------------------------------------------------------------------


def test_forged_and_swapped_tokens_are_refused_and_change_nothing(c):
    mine = book(c)
    theirs = book(c, hhmm="14:00", name="Other Customer")
    first, second, third = mine["sessions"]
    genuine = token_of(first)
    forgeries = {
        "swapped within the booking": [token_of(second)],
        "another booking's token": [token_of(theirs["sessions"][0])],
        "signed with another key": [make_token("not-the-secret-key", first["id"])],
        "signature tampered": [genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")],
        "signature dropped": [first["id"]],
        "empty signature": [first["id"] + "."],
        "session id swapped in": [second["id"] + "." + genuine.split(".", 1)[1]],
        "two dots": [genuine + ".x"],
    }
    before, since = state(c), last_activity_id(c)
    for label, tokens in forgeries.items():
        with pytest.raises(OperationFailed) as refused:
            lifecycle.cancel_sessions(c, [first["id"]], tokens=tokens, change_key=uuid.uuid4().hex)
        assert refused.value.code == "invalid_token", label
        with pytest.raises(OperationFailed):
            lifecycle.reschedule_session(c, first["id"], iso(local(on("2026-12-20"), "11:00")), token=tokens[0],
                                         change_key=uuid.uuid4().hex)
    # Right tokens in the wrong order are swapped tokens too; one token for two sessions is short.
    with pytest.raises(OperationFailed):
        lifecycle.cancel_sessions(c, [first["id"], second["id"]], tokens=[token_of(second), genuine],
                                  change_key=uuid.uuid4().hex)
    with pytest.raises(InvalidInput) as short:
        lifecycle.cancel_sessions(c, [first["id"], second["id"]], tokens=[genuine], change_key=uuid.uuid4().hex)
    assert short.value.code == "token_count_mismatch"
    # The same through the command line and the public tasks: refused before anything is enqueued.
    code, out, _ = cli("cancel", first["id"], "--token", token_of(third))
    assert (code, out["error"]["code"]) == (1, "invalid_token")
    code, out, _ = cli("reschedule", first["id"], "--to", iso(local(on("2026-12-20"), "11:00")), "--token", token_of(second))
    assert (code, out["error"]["code"]) == (1, "invalid_token")
    assert c.broker.sent == []
    import tasks  # noqa: F401  (registers the tasks)
    from worker.app import app

    answer = app.tasks["sessionpack.cancel_sessions"].apply(
        kwargs={"session_ids": [first["id"]], "tokens": [token_of(second)]}, task_id=uuid.uuid4().hex).get()
    assert answer["error"]["code"] == "invalid_token"
    run_tasks(c)

    assert state(c) == before  # no session, money, email, meeting or reminder changed
    assert set(new_activity(c, since)) <= {"cancel.refused", "reschedule.refused"}
    # A forged token is never stored or repeated: not in the activity stream, not in messages.
    with c.session_factory() as db:
        details = json.dumps([a.details for a in db.execute(select(Activity).where(Activity.id > since)).scalars()])
    assert genuine.split(".")[1][:20] not in details and token_of(second) not in details


def test_a_token_of_a_cancelled_session_cannot_act_again(c):
    shown = book(c)
    first = shown["sessions"][0]
    code, after, _ = cli("cancel", first["id"], "--token", token_of(first), "--wait", "30")
    assert code == 0 and after["sessions"][0]["status"] == "cancelled" and after["refunded"] == "25.00"
    before = state(c)
    code, out, _ = cli("cancel", first["id"], "--token", token_of(first))
    assert (code, out["error"]["code"]) == (1, "session_already_cancelled")
    code, out, _ = cli("reschedule", first["id"], "--to", iso(local(on("2026-12-20"), "11:00")), "--token", token_of(first))
    assert code == 1 and out["error"]["code"] == "session_already_cancelled"
    assert state(c) == before


# -- header and HTML injection ---------------------------------------------------------------------


def _delivered(c) -> list[email.message.EmailMessage]:
    outbox.deliver(c, None)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(c.settings.outbox_dir.glob("*.eml"))]


def test_header_injection_through_names_is_refused_or_neutralised(c):
    # A customer name with a line break is refused at the door (a failed booking, nothing held).
    request = booking_request(daily_slots(c.clock() + timedelta(days=3), 3), payment_method="pm_card_visa",
                              name="Sam\r\nBcc: victim@evil.example")
    booking_id = submit_booking(c, request)
    code, shown, _ = cli("show", booking_id)
    assert shown["status"] == "failed" and shown["failure"]["code"] == "invalid_request" and shown["sessions"] == []
    # The owner's name and the event's name come from configuration, which allows anything: the
    # emails and calendar files must still carry exactly one line each.
    evil = package_config(3, price="150.00")
    evil["owners"][0]["name"] = "Kim\r\nBcc: victim@evil.example"
    evil["booking_pages"][0]["event_types"][0]["name"] = "Coaching\r\nX-Injected: yes\nATTENDEE:mailto:evil@example.com"
    apply_config(c, evil)
    book(c, name='Sam "Quote" Lee, <sam@evil.example>', hhmm="15:00")
    messages = _delivered(c)
    assert len(messages) == 2
    for msg in messages:
        assert msg["Bcc"] is None and msg["X-Injected"] is None
        assert [a.addr_spec for a in msg["To"].addresses] in (["sam@example.org"], ["kim@example.com"])
        assert "\n" not in msg["Subject"] and "\r" not in str(msg["Subject"])
        headers = msg.as_string().split("\n\n", 1)[0]  # folded lines start with whitespace: no new header
        assert not re.search(r"(?mi)^(bcc|x-injected|attendee):", headers), headers
        calendar = next(p for p in msg.walk() if p.get_content_type() == "text/calendar").get_content()
        assert not re.search(r"(?m)^ATTENDEE:mailto:evil@example\.com", calendar)
        assert not re.search(r"(?m)^X-Injected", calendar)


def test_html_in_names_and_reasons_is_escaped(c):
    name = 'Sam <script>alert("x")</script><img src=x onerror=alert(1)>'
    shown = book(c, name=name)
    assert shown["customer"]["name"] == name  # stored verbatim
    code, _, _ = cli("cancel", shown["sessions"][0]["id"], "--admin", "--reason", "<b>late</b><script>steal()</script>",
                     "--wait", "30")
    assert code == 0
    messages = _delivered(c)
    assert {m["X-Sessionpack-Kind"] for m in messages} >= {"booking_confirmed_customer", "sessions_cancelled_customer"}
    for msg in messages:
        html = msg.get_body(("html",)).get_content()
        assert "<script" not in html.lower() and "<img" not in html.lower() and "<b>late" not in html
        if msg["X-Sessionpack-Kind"] == "booking_confirmed_customer":
            assert "&lt;script&gt;alert(" in html
        if msg["X-Sessionpack-Kind"] == "sessions_cancelled_customer":
            assert "&lt;b&gt;late&lt;/b&gt;" in html
        assert [a.addr_spec for a in msg["To"].addresses] in (["sam@example.org"], ["kim@example.com"])


# -- SQL-looking strings -----------------------------------------------------------------------------


def test_sql_looking_strings_are_stored_verbatim(c):
    name = "Robert'); DROP TABLE bookings;--"
    shown = book(c, name=name)
    code, again, _ = cli("show", shown["id"])
    assert code == 0 and again["customer"]["name"] == name
    reason = "'; DELETE FROM sessions WHERE '1'='1"
    code, _, _ = cli("cancel", shown["sessions"][0]["id"], "--admin", "--reason", reason, "--wait", "30")
    assert code == 0
    with c.session_factory() as db:
        assert db.get(Session, shown["sessions"][0]["id"]).cancel_reason == reason
        assert db.execute(select(func.count()).select_from(Session)).scalar_one() == 3
    assert {"bookings", "sessions", "ledger_entries"} <= set(inspect(c.engine).get_table_names())
    # Lookups with injection-shaped keys find nothing, instead of everything.
    for probe in ("' OR '1'='1", "bk_x' OR 1=1 --", '" OR ""="'):
        code, out, _ = cli("show", probe)
        assert (code, out["error"]["code"]) == (2, "unknown_booking")
        code, out, _ = cli("activity", "--booking", probe)
        assert code == 0 and out["activity"] == []
    code, out, _ = cli("slots", "coach' OR '1'='1/pkg", "--from", on("2026-12-03"), "--to", on("2026-12-04"))
    assert (code, out["error"]["code"]) == (2, "unknown_booking_page")


# -- oversized payloads ------------------------------------------------------------------------------


def _quick(fn, limit: float = 10.0):
    started = time.monotonic()
    result = fn()
    assert time.monotonic() - started < limit, "a refusal should not take long"
    return result


@pytest.mark.parametrize("label,payload,code", [
    ("a 10 MB request", lambda r: {**r, "customer": {**r["customer"], "name": "x" * 10_000_000}}, "invalid_request"),
    ("10,000 slots", lambda r: {**r, "slots": [on(f"2026-12-{3 + i % 20:02d}T15:00:00Z") for i in range(10_000)]},
     "invalid_request"),
    ("a 100 KB name", lambda r: {**r, "customer": {**r["customer"], "name": "N" * 100_000}}, "invalid_request"),
    ("a 1 MB request id", lambda r: {**r, "request_id": "r" * 1_000_000}, "invalid_request"),
    ("a 1 MB payment method", lambda r: {**r, "payment_method": "pm_" + "x" * 1_000_000}, "invalid_request"),
])
def test_oversized_booking_requests_are_refused_cleanly(c, label, payload, code):
    request = payload(booking_request(daily_slots(c.clock() + timedelta(days=3), 3), payment_method="pm_card_visa"))
    before = state(c)
    code_, out, _ = _quick(lambda: cli("book", "-", stdin=json.dumps(request)))
    assert (code_, out["error"]["code"]) == (2, code), label
    assert len(out["error"]["message"]) < 1000  # the error names the problem, it does not echo the payload
    assert c.broker.sent == [] and state(c) == before
    # The same message straight on the queue: refused and recorded without holding anything.
    booking_id = _quick(lambda: submit_booking(c, request))
    if booking_id is not None:
        with c.session_factory() as db:
            booking = db.get(Booking, booking_id)
            assert booking.status == "failed" and booking.failure["code"] == code and not booking.sessions
            assert len(booking.customer_name) <= 200


def test_oversized_changes_are_refused_cleanly(c):
    shown = book(c)
    before = state(c)
    ids = [f"ss_{i:024d}" for i in range(10_000)]
    code, out, _ = _quick(lambda: cli("cancel", *ids, "--admin"))
    assert (code, out["error"]["code"]) == (2, "too_many_sessions")
    code, out, _ = _quick(lambda: cli("cancel", shown["sessions"][0]["id"], "--admin", "--reason", "r" * 100_000))
    assert (code, out["error"]["code"]) == (2, "reason_too_long")
    code, out, _ = _quick(lambda: cli("refund", shown["id"], "--amount", "9" * 30 + ".00", "--admin"))
    assert (code, out["error"]["code"]) == (2, "invalid_amount")  # beyond any amount the ledger holds
    assert state(c) == before and c.broker.sent == []


def test_a_yaml_bomb_is_refused_cleanly(c, tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))
    code, out, _ = _quick(lambda: cli("book", "-", stdin=bomb + "request_id: bomb\nslots: *i\ncustomer: *h\n"))
    assert code == 2 and SNAKE.match(out["error"]["code"])
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb + "owners: *i\nbooking_pages: *h\n")
    code, out, _ = _quick(lambda: cli("config", "apply", str(path)))
    assert code == 2 and out["error"]["code"].startswith("config_")


@pytest.mark.parametrize("command", ["book", "config"])
def test_deeply_nested_json_is_refused_cleanly(c, tmp_path, command):
    nested = "[" * 100_000 + "]" * 100_000
    if command == "book":
        code, out, _ = cli("book", "-", stdin=nested)
    else:
        path = tmp_path / "nested.json"
        path.write_text(nested)
        code, out, _ = cli("config", "apply", str(path))
    assert code == 2 and SNAKE.match(out["error"]["code"])


# -- secrets in the logs -----------------------------------------------------------------------------


def test_secrets_never_reach_the_logs(c, caplog):
    """A whole run at DEBUG with every logger captured: booking and paying, the manage links, a
    cancellation with a refund, a reschedule with a fee, forged tokens, a manual refund. Neither
    the raw records nor the JSON lines (the worker's format, with its redaction) hold SECRET_KEY,
    a manage token or its signature, or the Stripe key."""
    from worker.logging import Redactor, json_handler

    stream = io.StringIO()
    handler = json_handler(stream, Redactor.from_settings(c.settings))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        shown = book(c)
        first, second, third = shown["sessions"]
        assert cli("cancel", first["id"], "--token", token_of(first), "--wait", "30")[0] == 0
        assert cli("reschedule", second["id"], "--to", iso(local(on("2026-12-20"), "11:00")), "--token",
                   token_of(second), "--wait", "30")[0] == 0
        assert cli("cancel", third["id"], "--token", token_of(second))[0] == 1
        assert cli("cancel", third["id"], "--token", make_token("guessed-key", third["id"]))[0] == 1
        assert cli("refund", shown["id"], "--amount", "5.00", "--admin", "--wait", "30")[0] == 0
        assert cli("reconcile")[0] == 0
        with pytest.raises(OperationFailed):  # a refusal logged through the task layer
            lifecycle.cancel_sessions(c, [third["id"]], tokens=[token_of(first)], change_key=uuid.uuid4().hex)
        logging.getLogger("sessionpack.test").warning("probe %s", "line")  # the capture works
    finally:
        root.removeHandler(handler)
    raw, lines = caplog.text, stream.getvalue()
    assert "probe line" in raw and "probe line" in lines
    assert len(caplog.records) > 20
    secrets = {"SECRET_KEY": SECRET_KEY, "Stripe key": STRIPE_KEY}
    for s in shown["sessions"]:
        secrets[f"token of {s['id']}"] = token_of(s)
        secrets[f"signature of {s['id']}"] = token_of(s).split(".", 1)[1]
    leaked = {name for name, value in secrets.items() if value in raw or value in lines}
    assert leaked == set()
    assert all(json.loads(line)["message"] is not None for line in lines.splitlines())
