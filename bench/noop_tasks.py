"""The baseline's tasks: a no-op on the service's own Celery app (same broker, same settings:
acks_late, prefetch 1, events). A worker loads it with `-I bench.noop_tasks`; only the benchmarks do."""
from __future__ import annotations

import time

from worker.app import app

_redis = None


@app.task(name="bench.noop")
def noop(mark: str | None = None, stamp: str | None = None, field: str | None = None) -> None:
    """Does nothing; the last task of a chain counts the chain as done in Redis (`mark`), or
    writes the time it ran into the hash `stamp` under `field` (for latency)."""
    global _redis
    if mark or stamp:
        if _redis is None:
            import redis

            _redis = redis.Redis.from_url(app.conf.broker_url)
        if mark:
            _redis.incr(mark)
        if stamp:
            _redis.hset(stamp, field, repr(time.time()))


# Measuring a proposed change before it is made: SESSIONPACK_BENCH_PROPOSALS=... (bench/proposals.py).
from bench.proposals import apply_from_env  # noqa: E402

apply_from_env()
