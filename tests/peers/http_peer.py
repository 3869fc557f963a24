"""A threaded loopback HTTP server to stand in for a provider's REST API in tests.

A subclass lists its `routes` (method, path regex, handler name) and answers in the provider's
shapes; this base records every request, checks nothing by itself, and applies fault switches
before routing:

- `fail_next(status, times, headers, body)`: answer with an error instead of handling the request;
- `slow_next(seconds)`: wait before handling (the request still takes effect, as on a real slow
  server whose client gave up);
- `malformed_next()`: handle the request, then answer 200 with a truncated JSON body.

Each switch takes `match`, a predicate on the `Recorded` request, to aim it at one request.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

Match = Callable[["Recorded"], bool]


@dataclass
class Recorded:
    """One request as the peer received it. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the matched route

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str  # fail | slow | malformed
    remaining: int
    match: Match | None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0


def parse_iso(value: Any) -> datetime | None:
    """An ISO 8601 timestamp with an offset (or Z) as aware UTC; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else None


class HttpPeer:
    """Base for provider peers: start it (or use it as a context manager), point the adapter at
    `url`, then read `requests` and the subclass's stored state."""

    routes: list[tuple[str, str, str]] = []  # (method, path regex, name of the handler method)
    not_found_message = "Meeting not found."  # may use {id}

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.meetings: dict[str, dict] = {}  # by the id in the provider's URLs, as a string
        self.created: list[str] = []  # every meeting id ever stored, deleted ones included
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._compiled = [(m, re.compile(p), h) for m, p, h in self.routes]

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> "HttpPeer":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.peer = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"{type(self).__name__}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow answers so shutdown does not wait for them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)  # type: ignore[union-attr]
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the peer first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- fault switches ---------------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None,
                  body: Any = None, match: Match | None = None) -> None:
        """Answer the next `times` (matching) requests with `status` and the provider's error
        body (or `body`), without handling them."""
        self._add(_Fault("fail", times, match, status=status, headers=dict(headers or {}), body=body))

    def slow_next(self, seconds: float, times: int = 1, match: Match | None = None) -> None:
        """Wait `seconds` before handling the next `times` (matching) requests."""
        self._add(_Fault("slow", times, match, seconds=seconds))

    def malformed_next(self, times: int = 1, match: Match | None = None) -> None:
        """Handle the next `times` (matching) requests, then answer 200 with broken JSON."""
        self._add(_Fault("malformed", times, match))

    def clear_faults(self) -> None:
        """Answer normally from now on."""
        with self._lock:
            self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, request: Recorded) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match(request):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- reading the log --------------------------------------------------------------------------
    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, filtered by method and by a path regex (matched in full)."""
        with self._lock:
            recorded = list(self.requests)
        return [r for r in recorded
                if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))]

    # -- for subclasses -------------------------------------------------------------------------
    def error_body(self, status: int, message: str) -> Any:
        """The provider's error shape."""
        return {"message": message}

    def error(self, status: int, message: str) -> Reply:
        return Reply(status, self.error_body(status, message))

    def missing_fields(self, body: Any, required: tuple[str, ...]) -> Reply | None:
        """A 400 naming the missing fields, as the real APIs answer, or None when all are there."""
        if not isinstance(body, dict):
            return self.error(400, "Request body must be a JSON object.")
        missing = [name for name in required if body.get(name) in (None, "")]
        return self.error(400, f"Missing required field(s): {', '.join(missing)}.") if missing else None

    def authorize(self, request: Recorded) -> Reply | None:
        """None to let the request through, or the provider's 401."""
        return None

    # -- the meeting store: routes name these handlers for the `id` in their path ----------------
    def keep(self, meeting_id: str, meeting: dict) -> None:
        with self._lock:
            self.meetings[meeting_id] = meeting
            self.created.append(meeting_id)

    def stored(self, request: Recorded) -> dict | None:
        with self._lock:
            return self.meetings.get(request.params["id"])

    def not_found(self, request: Recorded) -> Reply:
        return self.error(404, self.not_found_message.format(id=request.params["id"]))

    def present(self, meeting: dict):
        """A stored meeting as the provider's GET answers it."""
        return meeting

    def get_meeting(self, request: Recorded) -> Reply:
        meeting = self.stored(request)
        return Reply(200, self.present(meeting)) if meeting else self.not_found(request)

    def delete_meeting(self, request: Recorded) -> Reply:
        with self._lock:
            gone = self.meetings.pop(request.params["id"], None)
        return Reply(204) if gone else self.not_found(request)

    # -- dispatch ---------------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault and fault.kind == "fail":
            body = fault.body if fault.body is not None else self.error_body(fault.status, f"Injected HTTP {fault.status}.")
            return Reply(fault.status, body, fault.headers)
        if fault and fault.kind == "slow":
            self._stopping.wait(fault.seconds)
        reply = self._route(request)
        if fault and fault.kind == "malformed":
            return Reply(200, b'{"id": 12, "join_url": "https://', {"Content-Type": "application/json"})
        return reply

    def _route(self, request: Recorded) -> Reply:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        allowed = False
        for method, pattern, handler in self._compiled:
            found = pattern.fullmatch(request.path)
            if found is None:
                continue
            allowed = True
            if method == request.method:
                request.params = found.groupdict()
                return getattr(self, handler)(request)
        return self.error(405 if allowed else 404, f"No route for {request.method} {request.path}.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the adapters' sessions expect
    # Headers and body leave in two writes; with Nagle on, each answer waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Recorded(
            method=self.command, path=parts.path, query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
        )
        reply = self.server.peer.handle(request)  # type: ignore[attr-defined]
        if isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json"} if payload else {}
            headers.update(reply.headers)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left; that is what the slow switch is for

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # tests read `peer.requests`, not stderr
