"""A real Celery worker in a subprocess, for tests that claim queue behaviour."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parent.parent


def start_process(args: list[str], env: dict, log_path: Path, what: str, ready: Callable[[], bool],
                  log: Callable[[], str], timeout: float) -> subprocess.Popen:
    """Start `args` from the project directory in a session of its own (output appended to
    `log_path`) and wait until `ready()`; RuntimeError with the log when it exits or times out."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start:\n{log()}")
        if ready():
            return proc
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{log()}")


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM the process's whole session; SIGKILL what is still there after `grace` seconds."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class WorkerProcess:
    def __init__(self, env: dict, log_path: Path, concurrency: int = 2, beat: bool = False, name: str = "w1",
                 extra_args: tuple[str, ...] = ()):
        self.env, self.log_path, self.concurrency, self.beat, self.name = env, log_path, concurrency, beat, name
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        args = [str(BIN / "celery"), "-A", "worker", "worker", "--loglevel=INFO", f"--concurrency={self.concurrency}",
                "-P", "prefork", "-E", "-n", f"{self.name}@%h", "--without-mingle", "--without-gossip"]
        if self.beat:
            args += ["-B", "--schedule", str(self.log_path.parent / f"beat-{self.name}")]
        args += list(self.extra_args)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = start_process(args, self.env, self.log_path, "worker", lambda: " ready." in self.log(),
                                  self.log, timeout)
        return self

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and children): a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 20)


def cli(env: dict, *args: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, dict | None, str]:
    """Run `sessionpack ARGS`; returns (exit code, parsed JSON stdout or None, stderr)."""
    proc = subprocess.run([str(BIN / "sessionpack"), *args], env=env, cwd=PROJECT, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return proc.returncode, out, proc.stderr
