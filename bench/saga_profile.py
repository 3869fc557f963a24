"""Where one booking's time goes, without Celery: every saga step of an N-session package run
in-process on PostgreSQL, with the SQL statements each step sends (by kind) and its wall time,
and optionally a pyinstrument profile of the whole run.

    .venv/bin/python -m bench.saga_profile [--sessions 10] [--bookings 30] [--pyinstrument]

It does not measure the queue; it explains the task runtimes that bench.throughput prints.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections import Counter, defaultdict, deque

from bench.common import Bench, RESULTS, log, package_requests, report


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--bookings", type=int, default=30)
    p.add_argument("--pyinstrument", action="store_true")
    args = p.parse_args(argv)
    from sqlalchemy import event

    from services.booking import submit_booking
    from services.task_registry import TASKS
    from bench.proposals import ENV, apply_from_env
    from tests.support import package_config

    applied = apply_from_env()
    with Bench("saga_profile", broker=False) as bench:
        bench.apply_config(package_config(args.sessions))
        from core.settings import Settings
        from core.wiring import build_container

        # The container's Celery app only queues here: dispatch_tasks does its database work as
        # in the worker (claim the outbox rows after commit), and this loop runs the tasks in order.
        queue: deque = deque()
        c = build_container(Settings(), celery_app=_QueueApp(queue))
        bench._container = c  # disposed with the bench
        statements: Counter = Counter()
        kinds: dict[str, Counter] = defaultdict(Counter)
        current = {"step": None}

        @event.listens_for(c.engine, "before_cursor_execute")
        def _count(conn, cursor, statement, params, context, executemany):  # noqa: ANN001
            step = current["step"]
            if step is not None:
                statements[step] += 1
                kinds[step][_kind(statement)] += 1

        @event.listens_for(c.engine, "commit")
        def _commit(conn):  # noqa: ANN001
            if current["step"] is not None:
                kinds[current["step"]]["COMMIT"] += 1

        @event.listens_for(c.engine, "engine_connect")
        def _checkout(conn):  # noqa: ANN001
            if current["step"] is not None:
                kinds[current["step"]]["checkouts"] += 1

        times: dict[str, list[float]] = defaultdict(list)
        cpu_times: dict[str, list[float]] = defaultdict(list)  # this process only: PostgreSQL's share is not in it

        def run(req) -> None:
            current["step"] = "submit_booking"
            t, cpu = time.perf_counter(), time.process_time()
            submit_booking(c, req)
            times["submit_booking"].append(time.perf_counter() - t)
            cpu_times["submit_booking"].append(time.process_time() - cpu)
            while queue:
                name, kwargs = queue.popleft()
                short = name.split(".")[-1]
                current["step"] = short
                t, cpu = time.perf_counter(), time.process_time()
                if name not in TASKS:
                    raise RuntimeError(f"unexpected task {name}")
                TASKS[name].fn(c, **kwargs)
                times[short].append(time.perf_counter() - t)
                cpu_times[short].append(time.process_time() - cpu)
            current["step"] = None

        requests = package_requests(args.bookings + 3, args.sessions, tag="sp")
        for req in requests[:3]:  # warm-up (imports, templates, statement caches)
            run(req)
        statements.clear()
        kinds.clear()
        times.clear()
        cpu_times.clear()
        profiler = None
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        for req in requests[3:]:
            run(req)
        if profiler:
            profiler.stop()
            out = RESULTS / f"saga_profile-{args.sessions}{'-p-' + os.environ[ENV].replace(',', '+') if applied else ''}.txt"
            RESULTS.mkdir(exist_ok=True)
            out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
            log(f"pyinstrument profile written to {out}")
        confirmed = bench.scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
        assert confirmed == args.bookings + 3, f"{confirmed} confirmed"

    n = args.bookings
    rows = []
    for step in [s for s in ("submit_booking", "authorize_payment", "provision_conferencing", "capture_payment",
                             "send_emails", "sync_calendar") if s in times] + sorted(set(times) - {
                             "submit_booking", "provision_conferencing", "capture_payment", "send_emails", "sync_calendar"}):
        k = kinds[step]
        rows.append({"step": step, "ms": 1000 * statistics.fmean(times[step]),
                     "cpu_ms": 1000 * statistics.fmean(cpu_times[step]),
                     "statements": statements[step] / n,
                     **{kind: k[kind] / n for kind in ("SELECT", "INSERT", "UPDATE", "other", "COMMIT", "checkouts")}})
    total_ms = sum(r["ms"] for r in rows)
    total_st = sum(r["statements"] for r in rows)
    rows.append({"step": "total", **{k: sum(r[k] for r in rows) for k in rows[0] if k != "step"}})
    label = "-p-" + os.environ[ENV].replace(",", "+") if applied else ""
    report(f"saga_profile-{args.sessions}{label}", [
        ("proposals applied (bench/proposals.py)", ",".join(applied) or "none"),
        ("sessions per booking", args.sessions), ("bookings (after 3 warm-up)", n),
        ("in-process ms per booking (all steps)", total_ms),
        ("of which CPU of this process (ms)", sum(r["cpu_ms"] for r in rows[:-1])), ("SQL statements per booking", total_st),
    ], {"sessions": args.sessions, "steps": rows}, [("per step, mean per booking", rows)])


class _QueueApp:
    """Stands in for the Celery app: `send_task` appends to a queue."""

    def __init__(self, queue: deque):
        self.queue = queue

    def send_task(self, name: str, args=None, kwargs=None, **_options) -> None:
        self.queue.append((name, dict(kwargs or {})))


def _kind(statement: str) -> str:
    word = re.match(r"\s*(\w+)", statement)
    word = word.group(1).upper() if word else "other"
    return word if word in ("SELECT", "INSERT", "UPDATE") else "other"


if __name__ == "__main__":
    main()
