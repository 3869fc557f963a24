"""A Ctrl-C can never orphan a child the demo starts (services/devtools/processes.py): the race
behind the flaky test_an_interrupted_demo_stops_what_it_started, made deterministic here by
sending the signal at the worst moment on purpose."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from services.devtools import processes
from services.devtools.processes import child_process, interrupts_deferred

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def python_interrupt_handler():
    """Python's own Ctrl-C handler for each test: a shell that starts pytest in the background
    (`cmd &`) hands it SIGINT ignored, and then no signal here would ever interrupt."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_signal_inside_the_block_is_delivered_when_it_ends():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached_the_end = True
    assert reached_the_end


def test_no_signal_no_interrupt_and_the_handlers_are_back():
    before = {s: signal.getsignal(s) for s in processes.INTERRUPTS}
    with interrupts_deferred():
        pass
    assert {s: signal.getsignal(s) for s in processes.INTERRUPTS} == before


def test_an_interrupt_while_the_child_starts_stops_the_child(monkeypatch):
    """The signal lands inside Popen() itself, after the fork: the child must still be stopped."""
    started = []
    real_popen = subprocess.Popen

    def popen_interrupted_midway(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C before Popen() has returned
        return proc

    monkeypatch.setattr(processes.subprocess, "Popen", popen_interrupted_midway)
    with pytest.raises(KeyboardInterrupt):
        with child_process(SLEEPER):
            raise AssertionError("the interrupt is delivered before the body runs")
    (proc,) = started
    assert proc.returncode is not None and not alive(proc.pid)


def test_an_interrupt_while_the_child_runs_stops_it_with_the_given_stop():
    stopped = []

    def stop(proc):
        stopped.append(proc.pid)
        processes.kill_and_wait(proc)

    with pytest.raises(KeyboardInterrupt):
        with child_process(SLEEPER, stop=stop) as proc:
            os.kill(os.getpid(), signal.SIGINT)
            proc.wait(5)  # interrupted
    assert stopped == [proc.pid] and not alive(proc.pid)


def test_a_child_that_ended_by_itself_is_reaped():
    with child_process([sys.executable, "-c", "pass"]) as proc:
        proc.wait(30)
    assert proc.returncode == 0


def test_sigterm_goes_to_the_previous_handler():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
