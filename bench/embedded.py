"""The embedded default (`scripts/run.sh`'s setup): enqueue -> confirmed p50 / p95 of 3-session
packages on SQLite with the embedded SQLite broker (`sqla+sqlite`), no server of any kind.

    .venv/bin/python -m bench.embedded [--bookings 20]

No DATABASE_URL or BROKER_URL: the settings' defaults put the database and the broker in SQLite
files of a fresh var dir. The worker and beat are started as the Procfile starts them
(`celery -A worker worker --loglevel=INFO --concurrency=2 -E`, `celery -A worker beat`), with the
embedded defaults. The event type is free (no price), so no payment server is needed; the demo's
priced booking adds one localstripe call per booking and the same queue hops.

Each booking is accepted as `sessionpack book` accepts it (`accept_booking_request`: the request
stored with its publication, the message then handed to the broker), one at a time: the next is
sent once the previous one is confirmed and its emails are sent. Enqueue time is taken here just
before the call; confirmation time is the booking row's `updated_at`, written by the worker in
the transaction that confirms it (same machine clock). Stops by itself after `--bookings`, stops
the worker and beat, removes its var dir.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import BIN, PROJECT, log, machine, pages_config, report, summarize_runtimes
from bench.latency import percentile

SESSIONS = 3


class Process:
    """A Procfile line in its own session, its output in a log file; stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path, ready: str | None = None):
        self.name, self.log_path = name, log_path
        self.proc = subprocess.Popen(args, env=env, cwd=PROJECT, stdout=open(log_path, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if ready:
            deadline = time.monotonic() + 60
            while ready not in self.text():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{self.text()[-3000:]}")
                time.sleep(0.2)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=20, help="packages booked one after another (default 20)")
    p.add_argument("--no-beat", action="store_true", help="leave beat out (run.sh starts it)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle worker CPU measured at the end")
    p.add_argument("--label", default=None, help="write embedded-LABEL.json")
    args = p.parse_args(argv)

    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="sp-bench-embedded-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "BROKER_URL", "STRIPE_", "SMTP_", "ZOOM_", "WEBEX_", "GOTO_"))}
    env.update(SESSIONPACK_VAR_DIR=str(tmp / "var"), SECRET_KEY="bench-secret-key-0123456789abcdef",
               PUBLIC_BASE_URL="http://localhost:8000", PYTHONUNBUFFERED="1")
    os.environ.clear()
    os.environ.update(env)
    procs: list[Process] = []
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s))
    try:
        subprocess.run([str(BIN / "sessionpack"), "migrate"], env=env, cwd=PROJECT, check=True,
                       stdout=subprocess.DEVNULL)
        from core.settings import Settings
        from core.wiring import build_container
        from services.booking.intake import accept_booking_request
        from services.config import apply_config
        from sqlalchemy import text
        from worker.app import app

        settings = Settings()
        log(f"database {settings.database_url}, broker {settings.broker_url}")
        c = build_container(settings, celery_app=app)
        with c.uow() as uow:
            apply_config(uow, pages_config({"coach": SESSIONS}))
            uow.commit()
        # The Procfile's worker and beat lines, as run.sh starts them.
        procs.append(Process("worker", [str(BIN / "celery"), "-A", "worker", "worker", "--loglevel=INFO",
                                        "--concurrency=2", "-E"], env, tmp / "worker.log", ready=" ready."))
        if not args.no_beat:
            procs.append(Process("beat", [str(BIN / "celery"), "-A", "worker", "beat", "--loglevel=INFO",
                                          f"--schedule={tmp / 'var' / 'celerybeat-schedule'}"], env, tmp / "beat.log"))
        from bench.common import first_day
        from tests.support import booking_request, daily_slots

        def status(booking_id: str):
            with c.engine.connect() as conn:
                return conn.execute(text("SELECT status, updated_at FROM bookings WHERE id = :i"), {"i": booking_id}).first()

        def idle() -> bool:
            with c.engine.connect() as conn:
                return not (conn.execute(text("SELECT count(*) FROM task_outbox WHERE dispatched_at IS NULL")).scalar()
                            or conn.execute(text("SELECT count(*) FROM outbox_emails WHERE status IN ('pending', 'sending')")).scalar())

        day0 = first_day()
        latencies, accept_ms = [], []
        # One untimed booking first: the worker's pool processes import and connect on their first task.
        for i in range(args.bookings + 1):
            slots = daily_slots(day0 + timedelta(days=(i // 12) * SESSIONS), SESSIONS, f"{8 + i % 12:02d}:00")
            req = booking_request(slots, request_id=f"emb-{i}-{os.getpid()}", email=f"c{i}@example.org")
            t0 = time.time()
            booking_id, answer, _ = accept_booking_request(c, req, source="cli")
            accepted = time.time()
            deadline = time.monotonic() + 60
            while True:
                row = status(booking_id)
                if row is not None and row[0] == "confirmed":
                    break
                if row is not None and row[0] == "failed":
                    raise RuntimeError(f"booking {booking_id} failed")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"booking {booking_id} not confirmed after 60 s (status {row and row[0]})")
                time.sleep(0.05)
            confirmed_at = row[1]
            confirmed = confirmed_at.timestamp() if hasattr(confirmed_at, "timestamp") else \
                _parse_sqlite_ts(confirmed_at)
            if i:
                latencies.append(1000 * (confirmed - t0))
                accept_ms.append(1000 * (accepted - t0))
            while not idle() and time.monotonic() < deadline:
                time.sleep(0.05)
            log(f"booking {i}: {1000 * (confirmed - t0):.0f} ms")
        # What polling costs while nothing happens: the worker's processes' CPU over --idle seconds.
        worker = procs[0]
        pids = [worker.proc.pid] + [int(x) for x in subprocess.run(
            ["pgrep", "-P", str(worker.proc.pid)], capture_output=True, text=True).stdout.split()]
        cpu0, t_idle = _cpu_seconds(pids), time.monotonic()
        time.sleep(args.idle)
        idle_cpu_pct = 100 * (_cpu_seconds(pids) - cpu0) / (time.monotonic() - t_idle)
        polling = _polling_interval()
        runtimes = summarize_runtimes(_task_runtimes(tmp / "worker.log"), per=args.bookings + 1)
        beat_msgs = sum(1 for line in (tmp / "beat.log").read_text(errors="replace").splitlines()
                        if "Sending due task" in line) if not args.no_beat else 0
    finally:
        for proc in reversed(procs):
            proc.stop()
        if "c" in locals():
            c.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "bookings": len(latencies), "sessions": SESSIONS,
        "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
        "max_ms": max(latencies), "mean_ms": statistics.fmean(latencies),
        "accept_p50_ms": percentile(accept_ms, 0.5),
        "beat": not args.no_beat, "beat_tasks_sent": beat_msgs,
        "worker_idle_cpu_percent": idle_cpu_pct, "polling_interval_s": polling,
        "loadavg_at_end": os.getloadavg(),
    }
    name = "embedded" + (f"-{args.label}" if args.label else "")
    report(name, [
        ("enqueue -> confirmed p50 (ms)", figures["p50_ms"]),
        ("enqueue -> confirmed p95 (ms)", figures["p95_ms"]),
        ("max (ms)", figures["max_ms"]),
        ("accept_booking_request p50 (ms)", figures["accept_p50_ms"]),
        (f"worker CPU while idle ({args.idle:.0f} s, % of a core)", figures["worker_idle_cpu_percent"]),
        ("embedded broker polling interval (s)", str(figures["polling_interval_s"])),
        ("bookings (3 sessions, one at a time)", figures["bookings"]),
        ("load average at start / end", f"{info['loadavg_at_start']} / {figures['loadavg_at_end']}"),
    ], {"machine": info, **figures, "latencies_ms": latencies, "task_runtimes": runtimes},
        [("task runtimes from the worker's log (all bookings and what beat sent)", runtimes)])


def _task_runtimes(path: Path) -> dict[str, list[float]]:
    """Celery's 'Task NAME[id] succeeded in Xs' lines, by task name."""
    import re
    from collections import defaultdict

    out: dict[str, list[float]] = defaultdict(list)
    for name, secs in re.findall(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.]+)s", path.read_text(errors="replace")):
        out[name].append(float(secs))
    return dict(out)


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _polling_interval():
    """The interval the worker's transport uses (1.0: kombu's default, before it was settable)."""
    from worker.app import app

    with app.connection_for_write() as conn:
        return conn.transport.polling_interval


def _parse_sqlite_ts(value: str) -> float:
    from datetime import datetime, timezone

    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()


if __name__ == "__main__":
    main()
