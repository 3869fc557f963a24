"""Latency: enqueue-to-confirmed p50 / p95 / p99 of 10-session packages at a steady offered load
below saturation (by default half the throughput measured at the start of the same run), on a
2-process worker.

    .venv/bin/python -m bench.latency [--load 0.5] [--seconds 40]

Enqueue time is taken here when the message is sent; confirmation time is the booking row's
`updated_at`, written by the worker in the transaction that confirms it (same machine clock).
The baseline, in the same run: bare chains of 3 no-op tasks sent at the same rate, from send to
the moment their last task ran. It is fixed, like bench.throughput's 5-task chain: one task per
promised step up to the confirmation (create the sessions, provision conferencing, capture), not
however many tasks a booking really runs before it is confirmed.
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import timezone

from bench.common import Bench, log, machine, package_requests, report

SESSIONS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def chain_latencies(bench, n: int, rate: float, length: int) -> list[float]:
    """The baseline: n bare chains of `length` no-op tasks sent at the same steady rate; each one's
    last task writes the time it ran. Returns send-to-last-task milliseconds."""
    from celery import chain

    app = bench.app
    key = f"bench:latency:{time.time_ns()}"
    sent_at: dict[str, float] = {}
    log(f"baseline: {n} chains of {length} no-op tasks at {rate:.2f}/s")
    t0 = time.time()
    with app.producer_or_acquire() as producer:
        for i in range(n):
            due = t0 + i / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            sigs = [app.signature("bench.noop", immutable=True) for _ in range(length - 1)]
            sigs.append(app.signature("bench.noop", kwargs={"stamp": key, "field": str(i)}, immutable=True))
            sent_at[str(i)] = time.time()
            chain(*sigs).apply_async(producer=producer)
    deadline = time.monotonic() + 60
    while bench.redis.hlen(key) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    done = {k.decode(): float(v) for k, v in bench.redis.hgetall(key).items()}
    if len(done) < n:
        raise SystemExit(f"only {len(done)} of {n} baseline chains finished")
    return [1000 * (done[k] - sent_at[k]) for k in sent_at]


def _ts(dt) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--load", type=float, default=0.5, help="offered load as a share of measured throughput")
    p.add_argument("--seconds", type=float, default=40.0, help="how long the steady load lasts")
    p.add_argument("--saturation-bookings", type=int, default=80)
    p.add_argument("--chain-length", type=int, default=3,
                   help="tasks of the baseline chain: 3, the promised steps up to the confirmation")
    args = p.parse_args(argv)
    from services.booking.ids import booking_id_for
    from tests.support import package_config

    info = machine()
    with Bench("latency") as bench:
        bench.apply_config(package_config(SESSIONS))
        bench.start_worker(concurrency=2)
        log("warm-up: 12 bookings")
        bench.run_bookings(package_requests(12, SESSIONS, start_block=0, tag="lw"))
        bench.wait_idle()
        log(f"saturation: {args.saturation_bookings} bookings at once")
        sat = bench.run_bookings(package_requests(args.saturation_bookings, SESSIONS, start_block=2, tag="ls"))
        bench.wait_idle()
        rate = sat["per_second"] * args.load
        n = max(10, int(rate * args.seconds))
        requests = package_requests(n, SESSIONS, start_block=20, tag="ll")
        log(f"steady load: {rate:.2f} bookings/s for {n / rate:.0f}s ({n} bookings)")
        app = bench.app
        sent_at: dict[str, float] = {}
        t0 = time.time()
        with app.producer_or_acquire() as producer:
            for i, r in enumerate(requests):
                due = t0 + i / rate
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                sent_at[booking_id_for(r["request_id"])] = time.time()
                app.send_task("sessionpack.submit_booking", args=[r], producer=producer)
        offered = n / (time.time() - t0) if n > 1 else rate
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = bench.scalar("SELECT count(*) FROM bookings WHERE status IN ('confirmed', 'failed') "
                                "AND request_id LIKE 'll-%'")
            if done >= n:
                break
            time.sleep(0.1)
        rows = bench.sql("SELECT id, status, created_at, updated_at FROM bookings WHERE request_id LIKE 'll-%'")
        bench.wait_idle()
        chain_ms = chain_latencies(bench, n, rate, length=args.chain_length)
    failed = [r for r in rows if r[1] != "confirmed"]
    if failed or len(rows) != n:
        raise SystemExit(f"{len(failed)} bookings not confirmed, {len(rows)} of {n} found")
    total = [1000 * (_ts(r[3]) - sent_at[r[0]]) for r in rows]
    to_hold = [1000 * (_ts(r[2]) - sent_at[r[0]]) for r in rows]
    figures = {
        "saturation_per_s": sat["per_second"], "offered_per_s": offered, "load_share": args.load, "bookings": n,
        "p50_ms": percentile(total, 0.50), "p95_ms": percentile(total, 0.95), "p99_ms": percentile(total, 0.99),
        "mean_ms": statistics.fmean(total), "max_ms": max(total),
        "enqueue_to_held_p50_ms": percentile(to_hold, 0.50), "enqueue_to_held_p95_ms": percentile(to_hold, 0.95),
        "chain_length": args.chain_length, "chain_p50_ms": percentile(chain_ms, 0.50),
        "chain_p95_ms": percentile(chain_ms, 0.95), "chain_p99_ms": percentile(chain_ms, 0.99),
    }
    for q in ("p50", "p95", "p99"):
        figures[f"ratio_{q}"] = figures[f"{q}_ms"] / figures[f"chain_{q}_ms"]
    report("latency", [
        ("throughput at saturation (bookings/s)", figures["saturation_per_s"]),
        ("offered load (bookings/s)", f"{offered:.2f} ({args.load:.0%} of saturation), {n} bookings"),
        ("enqueue -> confirmed p50 (ms)", figures["p50_ms"]),
        ("enqueue -> confirmed p95 (ms)", figures["p95_ms"]),
        ("enqueue -> confirmed p99 (ms)", figures["p99_ms"]),
        ("mean / max (ms)", f"{figures['mean_ms']:.1f} / {figures['max_ms']:.1f}"),
        ("enqueue -> held p50 / p95 (ms)", f"{figures['enqueue_to_held_p50_ms']:.1f} / {figures['enqueue_to_held_p95_ms']:.1f}"),
        (f"baseline: bare chain of {args.chain_length} no-op tasks, same rate, p50 / p95 / p99 (ms)",
         f"{figures['chain_p50_ms']:.1f} / {figures['chain_p95_ms']:.1f} / {figures['chain_p99_ms']:.1f}"),
        ("ratio booking / chain at p50 / p95 / p99",
         f"{figures['ratio_p50']:.1f} / {figures['ratio_p95']:.1f} / {figures['ratio_p99']:.1f}"),
    ], {"machine": info, **figures})


if __name__ == "__main__":
    main()
