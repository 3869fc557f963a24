"""The chain rate of a truly bare Celery app, for reading bench.throughput's baseline.

bench.throughput's no-op tasks run on the service's own Celery app (bench/noop_tasks.py), so its
baseline pays what every task of ours pays in the worker (the redacting request and message
classes). This starts a worker of a plain `Celery()` app with the same broker settings (acks_late,
prefetch 1, events, JSON) and 2 prefork processes on a Redis database of its own (10, flushed
before and after, so it can run beside bench.throughput's worker), sends bare chains of 5 no-op
tasks and prints chains per second. bench.throughput runs it after its bookings, in the same run
(`plain_chain_rates`), and prints the ratio against it too.

    .venv/bin/python -m bench.bare_chain [--chains 600] [--rounds 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import redis
from celery import Celery

from bench.common import REDIS_DB, REDIS_HOST, REDIS_PORT, send_noop_chains

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB['bare_chain']}"
app = Celery("bare_chain", broker=URL)
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json", accept_content=["json"],
                worker_send_task_events=True, task_send_sent_event=True)
store = redis.Redis.from_url(URL)


@app.task(name="bare.noop")
def noop(mark: str | None = None) -> None:
    if mark:
        store.incr(mark)


def run(n: int, length: int = 5) -> float:
    key = f"bare:chains:{time.time_ns()}"
    t0 = time.perf_counter()
    send_noop_chains(app, "bare.noop", n, length, key)
    deadline = t0 + 150
    while int(store.get(key) or 0) < n:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {int(store.get(key) or 0)} of {n} chains done after 150 s")
        time.sleep(0.02)
    return n / (time.perf_counter() - t0)


def plain_chain_rates(chains: int = 600, rounds: int = 2, concurrency: int = 2) -> list[float]:
    """Start the plain app's worker, warm it up, and return the chains/s of each round."""
    store.flushdb()
    # -b: the celery command takes BROKER_URL from the environment over the app's own broker
    # (bench.throughput has set it to its own database by then).
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench.bare_chain", "-b", URL, "worker",
                               "-P", "prefork", "-c", str(concurrency), "-E", "--loglevel=WARNING"])
    try:
        time.sleep(6)  # the worker up and its pool forked
        run(100)  # warm-up
        return [run(chains) for _ in range(rounds)]
    finally:
        worker.terminate()
        worker.wait(30)
        store.flushdb()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chains", type=int, default=600)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    for i, rate in enumerate(plain_chain_rates(args.chains, args.rounds)):
        print(f"round {i + 1}: {rate:.1f} bare chains of 5 no-op tasks / s", flush=True)


if __name__ == "__main__":
    main()
