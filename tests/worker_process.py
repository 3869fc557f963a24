"""A real Celery worker in a subprocess, for tests that claim queue behaviour."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parent.parent


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
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=self.env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

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
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def cli(env: dict, *args: str, stdin: str | None = None, timeout: float = 120) -> tuple[int, dict | None, str]:
    """Run `sessionpack ARGS`; returns (exit code, parsed JSON stdout or None, stderr)."""
    proc = subprocess.run([str(BIN / "sessionpack"), *args], env=env, cwd=PROJECT, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return proc.returncode, out, proc.stderr
