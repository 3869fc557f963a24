"""Run a real localstripe server (a Stripe-compatible test server) on a free loopback port.

Used by `sessionpack demo` and by the integration tests (through tests/peers/localstripe_server.py):

    from services.devtools.localstripe import running_localstripe, reset

    with running_localstripe() as base_url:   # e.g. "http://127.0.0.1:40123"
        reset(base_url)                        # forget every object (DELETE /_config/data)
        ...

Point the Stripe adapter at it with `STRIPE_API_BASE=<base_url>` and any `sk_test_...` key.

Things to know about localstripe (1.15.x) that shape this helper:
- It always writes its whole store to the fixed path /tmp/localstripe.pickle and, without
  `--from-scratch`, loads it at start. Several servers (other test modules, other sessions)
  may share that file, so we always start with `--from-scratch` and also clear the store
  over HTTP (`DELETE /_config/data`) once it answers, never trusting what is on disk.
- It binds `::` (every interface, IPv4 mapped) and has no option to bind loopback only; we
  only ever talk to it through 127.0.0.1.
- It logs one access line per request on stderr: the output goes to a temporary file rather
  than a pipe, because a pipe nobody reads fills up and then blocks the server.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from .processes import child_process

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0


class LocalstripeError(RuntimeError):
    """localstripe could not be started or did not answer."""


def localstripe_executable() -> Path:
    """The `localstripe` console script beside the running interpreter (the venv), else on PATH."""
    path = Path(sys.executable).parent / "localstripe"
    if path.exists():
        return path
    found = shutil.which("localstripe")
    if found:
        return Path(found)
    raise LocalstripeError(
        f"{path} does not exist: install the test extras into this virtualenv "
        "(pip install -e '.[test]' or pip install localstripe)"
    )


def free_port() -> int:
    """A port that is free right now. localstripe binds it a moment later; `running_localstripe`
    retries with another port if someone else took it in between."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset(base_url: str, timeout: float = 5.0) -> None:
    """Forget every object on the server (`DELETE /_config/data`, which needs no API key)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/_config/data", method="DELETE")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status != 200:
            raise LocalstripeError(f"DELETE {base_url}/_config/data answered {response.status}")


def _answers(base_url: str) -> bool:
    try:
        reset(base_url, timeout=1.0)
        return True
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def _log_tail(log_path: Path, limit: int = 2000) -> str:
    try:
        return log_path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _stop(process: subprocess.Popen) -> None:
    # Only the process we started, by its own handle: terminate, then kill if it hangs.
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def _started(port: int, log_file):
    """localstripe on `port`, stopped on the way out; a Ctrl-C while it starts cannot orphan it."""
    return child_process(
        [str(localstripe_executable()), "--port", str(port), "--from-scratch"],
        stop=_stop,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Its own process group, so a Ctrl-C aimed at pytest does not race our clean stop.
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextlib.contextmanager
def running_localstripe(attempts: int = 3) -> Iterator[str]:
    """Start localstripe on a free port, wait until it answers, clear its data, yield its base
    URL (`http://127.0.0.1:<port>`, no trailing slash), and stop it on exit.

    Raises `LocalstripeError` (with the server's output) when it cannot be started.
    """
    with tempfile.TemporaryDirectory(prefix="localstripe-") as tmp:
        log_path = Path(tmp) / "localstripe.log"
        last_error = "not started"
        for _ in range(attempts):
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            with open(log_path, "wb") as log_file, _started(port, log_file) as process:
                deadline = time.monotonic() + START_TIMEOUT_SECONDS
                while time.monotonic() < deadline:
                    if process.poll() is not None:
                        break  # died: most likely the port was taken meanwhile; try another
                    if _answers(base_url):
                        break
                    time.sleep(0.1)
                if process.poll() is not None:
                    last_error = f"exited with {process.returncode}: {_log_tail(log_path)}"
                    continue
                if not _answers(base_url):
                    last_error = f"did not answer on {base_url} within {START_TIMEOUT_SECONDS}s: {_log_tail(log_path)}"
                    continue
                # _answers() already cleared the store once; this is the explicit guarantee.
                reset(base_url)
                yield base_url
                return
        raise LocalstripeError(f"localstripe could not be started after {attempts} attempts: {last_error}")

