"""The fault-injection harness: an in-process task runner with the tasks' retry decisions,
fault-injecting wrappers around the container's integrations, a Stripe proxy that delays or
fails chosen requests (and honours Idempotency-Key as Stripe does), a private Redis server that
can be killed and restarted, and PostgreSQL locks and backend terminations.

Nothing here is shared with another run: every server is our own, on a free loopback port.
"""
from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import requests
from sqlalchemy import create_engine, text

from services.errors import PermanentError, ServiceError, TransientError

SAGA_STEPS = {
    "sessionpack.authorize_payment": "authorize",
    "sessionpack.provision_conferencing": "conferencing",
    "sessionpack.capture_payment": "capture",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class LiveClock:
    """The wall clock, movable forward by hand (rows stamped with the wall clock, such as an
    email's next attempt, stay comparable with it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kwargs) -> None:
        self.offset += timedelta(**kwargs)


# -- the in-process task runner -------------------------------------------------------------------


@dataclass
class RunStats:
    tasks: Counter = field(default_factory=Counter)
    retries: Counter = field(default_factory=Counter)
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (task, error code)


def _is_transient(exc: BaseException) -> bool:
    from tasks.base import is_transient

    return is_transient(exc)


def run_tasks(c, *, retries: int | None = None, retry_delay: float = 0.0, stats: RunStats | None = None,
              max_rounds: int = 100_000) -> RunStats:
    """Run the task outbox in-process until it is empty, deciding as the Celery tasks do
    (tasks/base.py): a saga step retries transient failures up to MAX_RETRIES times, then (or at
    once for anything else) fails the booking and starts its compensation; compensation retries
    transient failures; every other task retries transient failures and otherwise fails (the
    failure is recorded in the returned stats, as Celery would log it)."""
    from services.booking import fail_booking
    from services.notifications import outbox
    from services.task_registry import TASKS
    from tasks.base import MAX_RETRIES
    from tests.support import claim_next_task, default_task_handlers

    retries = MAX_RETRIES if retries is None else retries
    stats = stats or RunStats()
    handlers: dict[str, Callable] = {**default_task_handlers(),
                                     "sessionpack.send_emails": lambda c, ids=None, booking_ids=None: outbox.deliver(c, ids)}
    for _ in range(max_rounds):
        claimed = claim_next_task(c)
        if claimed is None:
            return stats
        name, kwargs = claimed
        stats.tasks[name] += 1
        if name in SAGA_STEPS:
            step = SAGA_STEPS[name]
            fn = TASKS[name].fn
            for attempt in range(retries + 1):
                try:
                    fn(c, kwargs["booking_id"])
                    break
                except Exception as exc:  # noqa: BLE001 - the task's decision
                    if _is_transient(exc) and attempt < retries:
                        stats.retries[name] += 1
                        time.sleep(retry_delay)
                        continue
                    fail_booking(c, kwargs["booking_id"], step, exc)
                    break
            continue
        fn = handlers.get(name)
        if fn is None:
            raise AssertionError(f"run_tasks does not know task {name}")
        limit = 50 if name == "sessionpack.compensate_booking" else retries
        for attempt in range(limit + 1):
            try:
                fn(c, **kwargs)
                break
            except Exception as exc:  # noqa: BLE001
                if _is_transient(exc) and attempt < limit:
                    stats.retries[name] += 1
                    time.sleep(retry_delay)
                    continue
                stats.failed_tasks.append((name, getattr(exc, "code", type(exc).__name__)))
                break
    raise AssertionError("the task outbox did not drain")


def public_change(c, fn: Callable, *, key: str | None = None, retries: int = 6,
                  give_up: Callable | None = None, **kwargs) -> dict:
    """A public lifecycle task (cancel, reschedule, refund) as tasks/lifecycle.py runs it: one
    change key (the task id), transient failures retried with the same key, a refusal answered,
    and a change that cannot finish handed to `give_up` (the reschedule task's
    `lifecycle.give_up_reschedule`), whose refusal is the answer."""
    key = key or uuid.uuid4().hex
    for attempt in range(retries + 1):
        try:
            return fn(c, change_key=key, **kwargs)
        except Exception as exc:  # noqa: BLE001
            if _is_transient(exc) and attempt < retries:
                continue
            if isinstance(exc, ServiceError) and not isinstance(exc, TransientError):
                return {"error": exc.as_dict()}
            refusal = give_up(c, change_key=key) if give_up is not None else None
            if refusal is None:
                raise
            return {"error": refusal.as_dict()}
    raise AssertionError("unreachable")


def submit(c, request: dict, *, retries: int = 6) -> str | None:
    """The public submit task: submit_booking, transient failures retried."""
    from services.booking import authorize_payment, capture_payment, compensate_booking, fail_booking, provision_conferencing, submit_booking

    for attempt in range(retries + 1):
        try:
            return submit_booking(c, request)
        except Exception as exc:  # noqa: BLE001
            if _is_transient(exc) and attempt < retries:
                continue
            raise
    raise AssertionError("unreachable")


# -- fault injection around the container's integrations -------------------------------------------

# What a fault does: `permanent` raises PermanentError before the call; `before` raises
# TransientError before it (a 5xx: nothing happened); `after` makes the call and then raises
# TransientError (a timeout after the peer acted: the answer is lost).
KINDS = ("permanent", "before", "after")


class Faults:
    """Decides, call by call, whether to inject a fault: a script per method first ("stripe.capture":
    [kinds in order]), then per-method rates. A rate decision is drawn from a generator seeded with
    (seed, method, the call's identity, how often that identity was called), so a run is reproducible
    even though a package's meetings are created in parallel threads."""

    def __init__(self, seed: int = 0, rates: dict[str, dict[str, float]] | None = None):
        self.seed = seed
        self.rates = rates or {}
        self.script: dict[str, list[str | None]] = {}
        self.injected: Counter = Counter()
        self.calls: Counter = Counter()
        self.enabled = True
        self._lock = threading.Lock()

    def plan(self, method: str, *kinds: str | None) -> "Faults":
        """Inject these faults (None = a normal call) on the next calls of `method` ("stripe.capture")."""
        with self._lock:
            self.script.setdefault(method, []).extend(kinds)
        return self

    def take(self, method: str, identity: str | None = None) -> str | None:
        if identity:  # random ids (sessions, Stripe objects) would make the run depend on them
            identity = re.sub(r"\b(ss|pi|re|cus|pm|ch)_[A-Za-z0-9]+", r"\1", identity)
        with self._lock:
            self.calls[method] += 1
            nth = self.calls[(method, identity)] = self.calls[(method, identity)] + 1
            if not self.enabled:
                return None
            queue = self.script.get(method)
            if queue:
                kind = queue.pop(0)
            else:
                kind = None
                roll = random.Random(f"{self.seed}|{method}|{identity}|{nth}").random()
                for candidate, probability in (self.rates.get(method) or {}).items():
                    if roll < probability:
                        kind = candidate
                        break
                    roll -= probability
            if kind is not None:
                self.injected[f"{method}:{kind}"] += 1
            return kind

    @property
    def total(self) -> int:
        return sum(self.injected.values())


def _identity(args: tuple, kwargs: dict) -> str | None:
    """What names a call independently of timing: an idempotency key, a message id, a meeting
    request's topic (booking, number and customer); None when nothing stable is at hand."""
    if kwargs.get("idempotency_key"):
        return str(kwargs["idempotency_key"])
    for value in (*args, *kwargs.values()):
        if hasattr(value, "topic"):
            return value.topic
        if hasattr(value, "message_id"):
            return value.message_id
    keys = [a for a in args if isinstance(a, str) and "-" in a and a.startswith("bk_")]
    return keys[-1] if keys else None


def _faulty_call(faults: Faults, method: str, real: Callable, code: str):
    def call(*args, **kwargs):
        kind = faults.take(method, _identity(args, kwargs))
        if kind == "permanent":
            raise PermanentError(f"{code}_refused", f"injected: {method} refused for good")
        if kind == "before":
            raise TransientError(f"{code}_unavailable", f"injected: {method} answered 503")
        result = real(*args, **kwargs)
        if kind == "after":
            raise TransientError(f"{code}_timeout", f"injected: {method} acted, then its answer was lost")
        return result

    return call


class FaultyPayments:
    """The container's PaymentGateway with faults on chosen methods (`stripe.<method>`)."""

    def __init__(self, real, faults: Faults):
        self._real, self._faults = real, faults

    def __getattr__(self, name: str):
        attr = getattr(self._real, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        return _faulty_call(self._faults, f"stripe.{name}", attr, "stripe")


class FaultyProvider:
    """A conferencing provider with faults on create/update/delete/find (`<name>.<method>`)."""

    def __init__(self, real, faults: Faults):
        self._real, self._faults = real, faults
        self.name = real.name

    def __getattr__(self, name: str):
        attr = getattr(self._real, name)
        if name in ("create", "update", "delete", "find"):
            return _faulty_call(self._faults, f"{self.name}.{name}", attr, self.name)
        return attr


class FaultySender:
    """The email sender with faults on `send` (`email.send`); counts what it delivered."""

    def __init__(self, real, faults: Faults):
        self._real, self._faults = real, faults
        self.sent: Counter = Counter()

    def send(self, spec, from_addr):
        kind = self._faults.take("email.send", spec.message_id)
        if kind == "permanent":
            raise PermanentError("smtp_recipient_refused", "injected: 550 recipient refused")
        if kind == "before":
            raise TransientError("smtp_unavailable", "injected: 421 try again later")
        self._real.send(spec, from_addr)
        self.sent[spec.message_id] += 1
        if kind == "after":
            raise TransientError("smtp_timeout", "injected: the server took the message, then the reply was lost")

    def check(self):
        return self._real.check()


def inject(c, faults: Faults, *, payments: bool = True, conferencing: bool = True, email: bool = True):
    """Wrap the container's integrations so `faults` decides their calls. Returns the sender wrapper."""
    if payments:
        c.payments = FaultyPayments(c.payments, faults)
    if conferencing:
        c.conferencing = {name: FaultyProvider(p, faults) for name, p in c.conferencing.items()}
    sender = None
    if email:
        sender = c.email_sender = FaultySender(c.email_sender, faults)
    return sender


# -- a Stripe proxy that delays or fails chosen requests -------------------------------------------


@dataclass
class ProxyRule:
    method: str
    path: str  # a regex matched in full against the path
    action: str  # fail (answer `status` without forwarding) | delay_after (forward, then wait) | fail_after
    times: int = 1
    seconds: float = 0.0
    status: int = 500


class StripeProxy:
    """A loopback HTTP proxy in front of localstripe. Rules fail or delay matching requests
    (a delay *after* forwarding: the request took effect, the answer is late, as on a timeout).

    It also does what localstripe does not and Stripe does: a POST repeated with the same
    Idempotency-Key gets the first answer back instead of acting twice (a repeat that arrives
    while the first is still in flight waits for it), so the Stripe client's own network retry
    behaves as against Stripe."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.rules: list[ProxyRule] = []
        self.log: list[tuple[str, str]] = []
        self.injected = 0
        self._answers: dict[str, tuple[int, bytes, str]] = {}
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "StripeProxy":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]  # type: ignore[union-attr]
        return f"http://{host}:{port}"

    def add(self, rule: ProxyRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()
            self._answers.clear()
            self.injected = 0

    def seen(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.log if m == method and re.fullmatch(path, p))

    def _rule_for(self, method: str, path: str) -> ProxyRule | None:
        with self._lock:
            self.log.append((method, path))
            for rule in self.rules:
                if rule.method == method and re.fullmatch(rule.path, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
                    self.injected += 1
                    return rule
        return None

    def handle(self, method: str, raw_path: str, headers: dict, body: bytes) -> tuple[int, bytes, str]:
        path = raw_path.split("?", 1)[0]
        rule = self._rule_for(method, path)
        if rule is not None and rule.action == "fail":
            return rule.status, json.dumps({"error": {"type": "api_error", "message": "injected failure"}}).encode(), \
                "application/json"
        answer = self._answer(method, raw_path, headers, body)
        if rule is not None and rule.action == "delay_after":
            time.sleep(rule.seconds)
        if rule is not None and rule.action == "fail_after":
            return rule.status, json.dumps({"error": {"type": "api_error", "message": "injected failure after the call"}}).encode(), \
                "application/json"
        return answer

    def _answer(self, method: str, raw_path: str, headers: dict, body: bytes) -> tuple[int, bytes, str]:
        """localstripe's answer, or for a POST whose Idempotency-Key was seen, the first answer."""
        key = headers.get("idempotency-key") if method == "POST" else None
        if key:
            with self._lock:
                answer, event = self._answers.get(key), self._inflight.get(key)
                first = answer is None and event is None
                if first:
                    self._inflight[key] = threading.Event()
            if not first:
                if answer is None:
                    event.wait(30)  # type: ignore[union-attr]
                    answer = self._answers.get(key)
                if answer is not None:
                    return answer
        answer = None
        try:
            forwarded = self._session.request(
                method, self.upstream + raw_path, data=body,
                headers={k: v for k, v in headers.items() if k in ("authorization", "content-type", "stripe-version",
                                                                    "idempotency-key", "user-agent")},
                timeout=30)
            answer = (forwarded.status_code, forwarded.content, forwarded.headers.get("Content-Type", "application/json"))
            return answer
        finally:
            if key:
                with self._lock:
                    if answer is not None:
                        self._answers[key] = answer
                    event = self._inflight.pop(key, None)
                if event is not None:
                    event.set()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, content_type = self.server.proxy.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    do_GET = do_POST = do_DELETE = _dispatch

    def log_message(self, format, *args):  # noqa: A002
        pass


# -- a private Redis that can crash --------------------------------------------------------------


class PrivateRedis:
    """`redis-server` on a free loopback port, without persistence, owned by this test run:
    killing and restarting it loses every message it held (the machine's Redis is never touched)."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> "PrivateRedis":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {(self.workdir / 'redis.log').read_text()[-500:]}")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"private redis-server on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """A crash: SIGKILL our own redis-server; whatever it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, down_for: float = 0.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def flush(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.port).flushall()


# -- PostgreSQL: locks that stop a step, and dropped connections ---------------------------------


class Postgres:
    """Admin helpers on one test database: hold a table lock, see who waits, terminate backends."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2)

    @contextlib.contextmanager
    def locked(self, table: str, mode: str = "ACCESS EXCLUSIVE"):
        """Hold `LOCK TABLE table IN mode` until the block ends; yields the holder's backend pid."""
        engine = create_engine(self.url)
        conn = engine.connect()
        trans = conn.begin()
        try:
            conn.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            yield pid
        finally:
            try:
                trans.rollback()
            finally:
                conn.close()
                engine.dispose()

    def waiting(self, query_like: str = "%") -> int:
        """Backends of our database waiting for a lock, running a statement LIKE `query_like`."""
        with self.engine.connect() as conn:
            return conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
                "AND query LIKE :like"), {"db": self.name, "like": query_like}).scalar_one()

    def terminate_others(self, keep: int | None = None) -> int:
        """Drop every connection to our database but this one and `keep` (the lock holder)."""
        with self.engine.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid() AND pid <> :keep"),
                {"db": self.name, "keep": keep or 0}).all())

    def dispose(self) -> None:
        self.engine.dispose()
