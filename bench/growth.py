"""Growth: time per booking for packages of N = 1, 5, 10, 20 sessions (builtin conferencing, no
price) through the whole saga on a 2-process worker; the slope in ms per session and how well a
straight line fits (R^2, and the per-session cost of the first half against the second half).

    .venv/bin/python -m bench.growth [--bookings 80]

Three measures per N: wall time per booking at saturation (1 / throughput); the worker's task
runtime per booking (the sum of Celery's 'succeeded in' times); and the CPU time per booking of
the worker's processes, this database's PostgreSQL backends and Redis (from /proc), which is the
least sensitive to whatever else the machine is doing and is the one the fit verdict uses.
"""
from __future__ import annotations

import argparse

from bench.common import (Bench, cpu_delta, cpu_snapshot, log, machine, package_requests, pages_config, report,
                          summarize_runtimes)

SIZES = (1, 5, 10, 20)


def fit(xs: list[float], ys: list[float]) -> dict:
    """Least squares y = a + b x, with R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept_ms": a, "slope_ms_per_session": b, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=80, help="bookings per size")
    args = p.parse_args(argv)
    info = machine()
    rows = []
    with Bench("growth") as bench:
        bench.apply_config(pages_config({f"n{n}": n for n in SIZES}))
        worker = bench.start_worker(concurrency=2)
        for n in SIZES:
            page = f"n{n}"
            log(f"N={n}: warm-up 6, then {args.bookings} bookings")
            bench.run_bookings(package_requests(6, n, start_block=0, tag=f"g{n}w", page=page))
            bench.wait_idle()
            mark = worker.mark()
            cpu0 = cpu_snapshot(bench, worker)
            r = bench.run_bookings(package_requests(args.bookings, n, start_block=1, tag=f"g{n}", page=page))
            bench.wait_idle()
            cpu = cpu_delta(cpu0, cpu_snapshot(bench, worker), args.bookings)
            runtimes = worker.task_runtimes(since=mark)
            saga = {k: v for k, v in runtimes.items() if k.startswith("sessionpack.")}
            task_ms = 1000 * sum(sum(v) for v in saga.values()) / args.bookings
            rows.append({"sessions": n, "bookings_per_s": r["per_second"], "wall_ms_per_booking": 1000 / r["per_second"],
                         "task_ms_per_booking": task_ms, "cpu_ms_per_booking": cpu["total_ms"],
                         "cpu_pool_ms": cpu["pool_processes_ms"], "cpu_postgres_ms": cpu["postgres_ms"],
                         "tasks": {t["task"]: round(t["mean_ms"], 2) for t in summarize_runtimes(saga)}})
    xs = [float(r["sessions"]) for r in rows]
    wall = fit(xs, [r["wall_ms_per_booking"] for r in rows])
    task = fit(xs, [r["task_ms_per_booking"] for r in rows])
    cpu = fit(xs, [r["cpu_ms_per_booking"] for r in rows])
    by = {r["sessions"]: r for r in rows}

    def halves(key: str) -> str:
        first = (by[10][key] - by[1][key]) / 9
        second = (by[20][key] - by[10][key]) / 10
        return f"{first:.2f} ms/session for 1->10, {second:.2f} for 10->20"

    linear = cpu["r2"] >= 0.98
    report("growth", [
        ("slope, CPU time per booking (all processes)", f"{cpu['slope_ms_per_session']:.2f} ms per session "
                                                        f"(intercept {cpu['intercept_ms']:.1f} ms, R^2 {cpu['r2']:.4f})"),
        ("slope, wall time per booking", f"{wall['slope_ms_per_session']:.2f} ms per session "
                                         f"(intercept {wall['intercept_ms']:.1f} ms, R^2 {wall['r2']:.4f})"),
        ("slope, worker task time per booking", f"{task['slope_ms_per_session']:.2f} ms per session "
                                                f"(intercept {task['intercept_ms']:.1f} ms, R^2 {task['r2']:.4f})"),
        ("increments, wall", halves("wall_ms_per_booking")),
        ("increments, task time", halves("task_ms_per_booking")),
        ("increments, CPU time", halves("cpu_ms_per_booking")),
        ("linear (R^2 of CPU time >= 0.98)", "yes" if linear else "NO"),
    ], {"machine": info, "rows": rows, "fit_wall": wall, "fit_task": task, "fit_cpu": cpu, "linear": linear},
        [("per size", [{k: v for k, v in r.items() if k != "tasks"} for r in rows]),
         ("mean task runtime (ms) per size", [{"sessions": r["sessions"], **r["tasks"]} for r in rows])])


if __name__ == "__main__":
    main()
