"""Child processes that a Ctrl-C can never orphan (the demo's CLI steps, worker and localstripe).

A KeyboardInterrupt raised inside `subprocess.Popen()` (while it waits for the child's exec)
loses the handle of a child that is already running: nothing stops it any more. So the
interrupting signals are deferred while a child is started and delivered right after, once the
handle is known, and the child is stopped on the way out whatever happens.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from typing import Callable, Iterator

INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP for the block; one that arrived meanwhile is delivered to
    its previous handler (for SIGINT, usually a KeyboardInterrupt) when the block ends. Outside
    the main thread, where Python cannot set handlers, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum)) for s in INTERRUPTS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in held[:1]:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def kill_and_wait(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """The default stop: KILL the child if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:  # pragma: no cover - a KILLed process always ends
        pass


@contextlib.contextmanager
def child_process(args: list[str], *, stop: Callable[[subprocess.Popen], None] = kill_and_wait,
                  **popen_kwargs) -> Iterator[subprocess.Popen]:
    """`subprocess.Popen(args, **popen_kwargs)` started with interrupts deferred, and `stop(proc)`
    on the way out (normal end, error or interrupt). A child that ended by itself is only reaped."""
    proc = None
    try:
        with interrupts_deferred():
            proc = subprocess.Popen(args, **popen_kwargs)
        yield proc
    finally:
        if proc is not None:
            stop(proc)
