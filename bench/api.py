"""The HTTP API's cost: bookings through `POST /api/v1/bookings` (the web process under uvicorn,
8 concurrent clients) against the same bookings enqueued directly on the broker, on the same
2-process worker, database and machine, in one run (direct, API, direct again).

    .venv/bin/python -m bench.api [--bookings 200] [--sessions 1] [--clients 8] [--label L]

Cost is CPU per booking of every process that serves it (worker, PostgreSQL backends, Redis, and
for the API path the web process), read from /proc so other load on the machine is excluded; the
client's own CPU is not counted. Target: the API path costs under 10 % more.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import (REDIS_DB, Bench, _cpu_of, cpu_delta, cpu_snapshot, log, machine, package_requests, report)

REDIS_DB.setdefault("api", 12)
TARGET = 0.10


class Web:
    """The web process under uvicorn, on a free port."""

    def __init__(self, env: dict, log_path: Path):
        import requests

        from services.devtools.localstripe import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        bin_dir = Path(sys.executable).parent
        self.proc = subprocess.Popen([str(bin_dir / "uvicorn"), "--factory", "web.app:create_app", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("the web process did not start")

    def cpu(self) -> float:
        return _cpu_of(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def api_key(bench: Bench) -> str:
    from services import apikeys

    c = bench.container
    with c.uow() as uow:
        key = apikeys.create_key(uow, "bench", (), False, now=c.clock())["key"]
        uow.commit()
    return key


def wait_confirmed(bench: Bench, base: int, n: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while bench.scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'") - base < n:
        failed = bench.scalar("SELECT count(*) FROM bookings WHERE status = 'failed'")
        if failed:
            why = bench.sql("SELECT failure FROM bookings WHERE status = 'failed' LIMIT 1")
            raise RuntimeError(f"{failed} booking(s) failed: {why}")
        if time.monotonic() > deadline:
            raise RuntimeError("bookings not confirmed in time")
        time.sleep(0.02)


def run_api(bench: Bench, web: Web, key: str, requests_: list[dict], clients: int) -> dict:
    import requests

    base = bench.scalar("SELECT count(*) FROM bookings WHERE status = 'confirmed'")
    todo = list(requests_)
    lock = threading.Lock()
    errors: list[str] = []

    def client():
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {key}"
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            r = s.post(web.url + "/api/v1/bookings", json=body, timeout=30)
            if r.status_code != 202:
                errors.append(r.text)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} API calls refused: {errors[0]}")
    wait_confirmed(bench, base, len(requests_))
    elapsed = time.perf_counter() - t0
    return {"n": len(requests_), "seconds": elapsed, "per_second": len(requests_) / elapsed, "enqueue_seconds": sent}


def measured(bench: Bench, worker, web: Web, fn) -> tuple[dict, dict]:
    before = cpu_snapshot(bench, worker)
    web0 = web.cpu()
    result = fn()
    bench.wait_idle()
    after = cpu_snapshot(bench, worker)
    cpu = cpu_delta(before, after, result["n"])
    cpu["web_ms"] = 1000 * (web.cpu() - web0) / result["n"]
    cpu["total_ms"] += cpu["web_ms"]
    return result, cpu


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bookings", type=int, default=200)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--label", default="", help="results go to bench/results/api-LABEL.json")
    args = p.parse_args(argv)
    from tests.support import package_config

    info = machine()
    with Bench("api") as bench:
        bench.apply_config(package_config(args.sessions))
        key = api_key(bench)
        worker = bench.start_worker(concurrency=args.concurrency)
        web = Web(bench.env, bench.tmp / "web.log")
        try:
            log("warm-up: 20 direct, 20 through the API")
            bench.run_bookings(package_requests(20, args.sessions, start_block=0, tag="wd"))
            bench.wait_idle()
            run_api(bench, web, key, package_requests(20, args.sessions, start_block=10, tag="wa"), args.clients)
            bench.wait_idle()
            n = args.bookings
            log(f"direct on the broker: {n}")
            d1, d1cpu = measured(bench, worker, web, lambda: bench.run_bookings(
                package_requests(n, args.sessions, start_block=100, tag="d1")))
            log(f"through POST /api/v1/bookings: {n} ({args.clients} clients)")
            a, acpu = measured(bench, worker, web, lambda: run_api(
                bench, web, key, package_requests(n, args.sessions, start_block=300, tag="a"), args.clients))
            log(f"direct again: {n}")
            d2, d2cpu = measured(bench, worker, web, lambda: bench.run_bookings(
                package_requests(n, args.sessions, start_block=500, tag="d2")))
        finally:
            web.stop()
    direct_rate = statistics.fmean([d1["per_second"], d2["per_second"]])
    direct_cpu = {k: statistics.fmean([d1cpu[k], d2cpu[k]]) for k in d1cpu}
    extra_cost = acpu["total_ms"] / direct_cpu["total_ms"] - 1
    headline = [
        ("bookings per run", args.bookings), ("sessions per booking", args.sessions),
        ("worker processes", args.concurrency), ("API clients", args.clients),
        ("direct on the broker: bookings / s", direct_rate),
        ("  (two direct runs)", f"{d1['per_second']:.1f} / {d2['per_second']:.1f}"),
        ("through the API: bookings / s", a["per_second"]),
        ("CPU ms per booking, direct", direct_cpu["total_ms"]),
        ("CPU ms per booking, API (web process included)", acpu["total_ms"]),
        ("API extra cost", f"{100 * extra_cost:+.1f} %"),
        ("target", f"< {100 * TARGET:.0f} % more: {'met' if extra_cost < TARGET else 'MISSED'}"),
    ]
    rows = [{"process": k.removesuffix("_ms"), "direct": direct_cpu[k], "api": acpu[k]} for k in acpu]
    report(f"api-{args.label}" if args.label else "api", headline, {"machine": info, "direct": [d1, d2], "api": a, "cpu_direct": direct_cpu,
                              "cpu_api": acpu, "extra_cost": extra_cost, "target": TARGET},
           [("CPU ms per booking by process (from /proc)", rows)])


if __name__ == "__main__":
    main()
