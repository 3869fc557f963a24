"""Scale-out: throughput of 10-session packages with 1, 2 and 4 worker processes (one prefork
worker, --concurrency=N), each beside bare no-op chains of the same length on the same worker.

    .venv/bin/python -m bench.scaleout [--bookings 120] [--chains 600]

The machine has 2 cores shared with PostgreSQL, Redis and this script: 4 processes oversubscribe it.
"""
from __future__ import annotations

import argparse

from bench.common import Bench, log, machine, report
from bench.throughput import SESSIONS, measure

COUNTS = (1, 2, 4)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=120)
    p.add_argument("--chains", type=int, default=600)
    args = p.parse_args(argv)
    from tests.support import package_config

    info = machine()
    rows = []
    with Bench("scaleout") as bench:
        bench.apply_config(package_config(SESSIONS))
        for i, n in enumerate(COUNTS):
            log(f"== {n} worker process(es)")
            worker = bench.start_worker(concurrency=n, name=f"c{n}")
            r = measure(bench, worker, args.bookings, args.chains, block0=i * 200, tag=f"s{n}")
            bench.stop_workers()
            rows.append({"processes": n, "bookings_per_s": r["bookings_per_s"], "chains_per_s": r["chains_per_s"],
                         "ratio": r["ratio"]})
    base_b, base_c = rows[0]["bookings_per_s"], rows[0]["chains_per_s"]
    for r in rows:
        r["bookings_speedup"] = r["bookings_per_s"] / base_b
        r["chains_speedup"] = r["chains_per_s"] / base_c
    report("scaleout", [(f"{r['processes']} process(es)", f"{r['bookings_per_s']:.1f} bookings/s "
                         f"(x{r['bookings_speedup']:.2f}), {r['chains_per_s']:.1f} chains/s (x{r['chains_speedup']:.2f}), "
                         f"ratio {r['ratio']:.3f}") for r in rows],
           {"machine": info, "rows": rows}, [("throughput by worker processes", rows)])


if __name__ == "__main__":
    main()
