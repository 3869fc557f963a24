"""`sessionpack demo` as a newcomer runs it: in an empty directory, nothing configured, no server."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.worker_process import BIN

pytestmark = pytest.mark.timeout(600)

DEMO_TIMEOUT = 300


def demo_env() -> dict:
    """The environment of a fresh shell: none of the settings, so the embedded defaults apply."""
    prefixes = ("SESSIONPACK_", "DATABASE_URL", "BROKER_URL", "SECRET_KEY", "STRIPE_", "SMTP_", "ZOOM_", "WEBEX_",
                "GOTO_", "PUBLIC_BASE_URL", "CELERY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def processes_in(directory: Path) -> list[str]:
    """Processes whose working directory is `directory`: everything the demo starts runs there."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) == directory:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name}: {command}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def started_pids(stderr: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"\(pid (\d+)", stderr)]


def assert_nothing_left(directory: Path, stderr: str) -> None:
    deadline = time.monotonic() + 10  # a process that is exiting may take a moment
    while processes_in(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_in(directory) == []
    assert started_pids(stderr), "the demo says which processes it started"
    for pid in started_pids(stderr):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def run_demo(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sessionpack"), "demo"], cwd=directory, env=demo_env(),
                          capture_output=True, text=True, timeout=DEMO_TIMEOUT)


def test_demo_books_cancels_and_reschedules_and_leaves_nothing_running(tmp_path):
    started = time.monotonic()
    first = run_demo(tmp_path)
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:]
    booking = json.loads(first.stdout)
    assert (booking["status"], booking["paid"], booking["refunded"], booking["fees"]) == \
        ("confirmed", "150.00", "25.00", "5.00")
    assert [s["status"] for s in booking["sessions"]] == ["cancelled", "confirmed", "confirmed"]
    summary = first.stderr
    assert re.search(r"refund\w*\s+25\.00", summary) and re.search(r"fees?\s+5\.00", summary)
    for session in booking["sessions"][1:]:
        assert session["conferencing"]["join_url"] in summary
    var = tmp_path / "var"
    emails = list((var / "outbox").glob("*.eml"))
    assert len(emails) >= 6 and all(email.name in summary for email in emails)
    calendar_files = list((var / "demo" / booking["id"]).glob("*.ics"))
    assert len(calendar_files) == 3 and str(var / "demo" / booking["id"]) in summary
    assert_nothing_left(tmp_path, first.stderr)

    # Again in the same place: a new booking on the next free slots, the same story.
    second = run_demo(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert again["id"] != booking["id"] and (again["refunded"], again["fees"]) == ("25.00", "5.00")
    assert_nothing_left(tmp_path, second.stderr)
    print(f"first demo run took {took:.1f}s")


def test_an_interrupted_demo_stops_what_it_started(tmp_path):
    """Ctrl-C while the booking is on its way: the demo is then starting or running a CLI child
    (`slots`, then `book`), a moment that once could orphan the child (a KeyboardInterrupt inside
    Popen() loses its handle). Children are now started with interrupts deferred, so every moment
    is safe and the test no longer depends on when the signal lands."""
    err_path = tmp_path / "demo.err"
    with open(err_path, "w") as err:
        # SIGINT back to its default in the child: a shell that started pytest in the background
        # (`cmd &`) hands it SIGINT ignored, and the demo would then never see this Ctrl-C.
        proc = subprocess.Popen([str(BIN / "sessionpack"), "demo"], cwd=tmp_path, env=demo_env(),
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT
        while "      request demo-" not in err_path.read_text():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, f"the booking never started:\n{err_path.read_text()}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, while the booking is on its way
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = err_path.read_text()
    assert "stopping the worker" in stderr and "stopping localstripe" in stderr
    assert_nothing_left(tmp_path, stderr)
