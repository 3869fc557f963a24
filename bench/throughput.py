"""Throughput: 10-session packages confirmed per second through the whole saga (builtin
conferencing, no price) on a 2-process worker, against bare Celery chains of 5 no-op tasks on the
same worker, broker and machine, in the same run.

The baseline is fixed (issue 20): one no-op task per step of the workflow our users were promised
(create the sessions, provision conferencing, capture payment, send the notification, schedule
reminders), however many tasks a booking really runs, so that doing the same work in fewer tasks
counts. The tasks a booking runs are still measured and printed.

    .venv/bin/python -m bench.throughput [--bookings 240] [--chains 1200] [--profile]

Target: bookings/s >= 0.5 x chains/s.
"""
from __future__ import annotations

import argparse
import os
import statistics

from bench.bare_chain import plain_chain_rates
from bench.common import (Bench, Profiler, RESULTS, cpu_delta, cpu_snapshot, log, machine, package_requests,
                          profile_summary, report, summarize_runtimes)

SESSIONS = 10
TARGET = 0.5
# The promised steps: sessions, conferencing, payment, notification, reminders.
CHAIN_LENGTH = 5


def tasks_per_booking(worker, mark: int, n: int) -> tuple[float, dict]:
    runtimes = worker.task_runtimes(since=mark)
    saga = {k: v for k, v in runtimes.items() if k.startswith("sessionpack.")}
    return sum(len(v) for v in saga.values()) / n, saga


def measure(bench: Bench, worker, bookings: int, chains: int, *, block0: int = 0, tag: str = "t") -> dict:
    """Warm up, then chains, bookings, chains again. Returns the figures."""
    log("warm-up: 12 bookings, 100 chains")
    bench.run_bookings(package_requests(12, SESSIONS, start_block=block0, tag=f"{tag}w"))
    bench.wait_idle()
    length = CHAIN_LENGTH
    bench.run_chains(100, length)
    bench.wait_idle()

    log(f"chains: {chains} x {length} no-op tasks")
    cpu0 = cpu_snapshot(bench, worker)
    c1 = bench.run_chains(chains, length)
    bench.wait_idle()
    chain_cpu = cpu_delta(cpu0, cpu_snapshot(bench, worker), chains)
    log(f"bookings: {bookings} x {SESSIONS} sessions")
    mark = worker.mark()
    cpu0 = cpu_snapshot(bench, worker)
    b = bench.run_bookings(package_requests(bookings, SESSIONS, start_block=block0 + 1, tag=tag))
    bench.wait_idle()
    booking_cpu = cpu_delta(cpu0, cpu_snapshot(bench, worker), bookings)
    runtimes = worker.task_runtimes(since=mark)
    per_booking, _ = tasks_per_booking(worker, mark, bookings)
    log(f"chains again: {chains} x {length}")
    c2 = bench.run_chains(chains, length)
    bench.wait_idle()
    chain_rate = statistics.fmean([c1["per_second"], c2["per_second"]])
    return {"tasks_per_booking": per_booking, "chain_length": length, "bookings": b, "chains": [c1, c2],
            "bookings_per_s": b["per_second"], "chains_per_s": chain_rate,
            "ratio": b["per_second"] / chain_rate, "task_runtimes": summarize_runtimes(runtimes, per=bookings),
            "cpu_ms_per_booking": booking_cpu, "cpu_ms_per_chain": chain_cpu}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=240)
    p.add_argument("--chains", type=int, default=1200)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="afterwards, py-spy a further booking run (not timed)")
    p.add_argument("--label", default="", help="results go to bench/results/throughput-LABEL.json")
    args = p.parse_args(argv)
    from bench.proposals import ENV
    from tests.support import package_config

    name = f"throughput-{args.label}" if args.label else "throughput"
    info = machine()
    with Bench("throughput") as bench:
        bench.apply_config(package_config(SESSIONS))
        worker = bench.start_worker(concurrency=args.concurrency)
        r = measure(bench, worker, args.bookings, args.chains)
        # The same chains on a plain Celery app (no redacting classes), in this run, after the
        # bookings: the service's own app makes its no-op tasks pay what every task of ours pays.
        log(f"plain Celery app: 2 x {args.chains // 2} chains of {CHAIN_LENGTH} no-op tasks")
        plain = plain_chain_rates(args.chains // 2, rounds=2, concurrency=args.concurrency)
        r["plain_chains"] = plain
        r["plain_chains_per_s"] = statistics.fmean(plain)
        r["ratio_plain"] = r["bookings_per_s"] / r["plain_chains_per_s"]
        profile = None
        if args.profile:
            log(f"profiling a further {args.bookings} bookings with py-spy (not timed)")
            raw = RESULTS / f"{name}-profile.txt"
            with Profiler(worker, raw):
                bench.run_bookings(package_requests(args.bookings, SESSIONS, start_block=1000, tag="p"))
                bench.wait_idle()
            profile = profile_summary(raw)
    headline = [
        ("proposals applied (bench/proposals.py)", os.environ.get(ENV) or "none"),
        ("worker processes", args.concurrency),
        ("tasks per booking (measured)", round(r["tasks_per_booking"], 2)),
        ("bookings (10 sessions) / s", r["bookings_per_s"]),
        (f"bare chains of {r['chain_length']} no-op tasks / s", r["chains_per_s"]),
        ("  (two chain runs)", " / ".join(f"{c['per_second']:.1f}" for c in r["chains"])),
        ("ratio bookings / chains", r["ratio"]),
        ("target", f">= {TARGET}: {'met' if r['ratio'] >= TARGET else 'MISSED'}"),
        (f"plain Celery app chains of {CHAIN_LENGTH} / s", r["plain_chains_per_s"]),
        ("  (two plain runs)", " / ".join(f"{x:.1f}" for x in r["plain_chains"])),
        ("ratio bookings / plain chains", r["ratio_plain"]),
        ("target (plain)", f">= {TARGET}: {'met' if r['ratio_plain'] >= TARGET else 'MISSED'}"),
    ]
    tables = [("task runtimes during the booking phase (from the worker log)", r["task_runtimes"]),
              ("CPU ms per booking / per chain, by process (from /proc; other load on the machine excluded)",
               [{"process": k.removesuffix("_ms"), "per_booking": v, "per_chain": r["cpu_ms_per_chain"][k]}
                for k, v in r["cpu_ms_per_booking"].items()])]
    if profile:
        tables.append(("py-spy, pool processes running tasks: project functions on the stack (inclusive share)",
                       profile["own_inclusive"][:20]))
        tables.append(("py-spy, pool processes running tasks: innermost frame by library (self share)",
                       profile["self_by_library"][:14]))
    report(name, headline, {"machine": info, "proposals": os.environ.get(ENV) or None, **r, "target": TARGET,
                            "profile": profile}, tables)


if __name__ == "__main__":
    main()
