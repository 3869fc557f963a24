"""Fixtures for the operations tests (Flower, logs, doctor, Procfile): a real worker on
PostgreSQL + Redis with payments through localstripe, set up the way test_worker_queue.py does."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support import booking_request, daily_slots, package_config, truncate_all
from tests.worker_process import WorkerProcess, cli

STRIPE_TEST_KEY = "sk_test_sessionpack_ops"
SECRET_KEY = "ops-test-secret-key-0123456789abcdef"
# Redis databases these fixtures may use; 0 is everyone's default and test_worker_queue.py uses 11.
REDIS_DATABASES = [n for n in range(1, 16) if n != 11]


def base_env(tmp_path: Path) -> dict:
    """The environment of a CLI or worker subprocess on the embedded defaults in tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "BROKER_URL", "STRIPE_", "SMTP_", "ZOOM_", "WEBEX_", "GOTO_",
                                "FLOWER_", "SECRET_KEY"))}
    env.update(SESSIONPACK_VAR_DIR=str(tmp_path / "var"), SECRET_KEY=SECRET_KEY,
               PUBLIC_BASE_URL="https://book.example.com", PYTHONUNBUFFERED="1")
    return env


def write_json(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def stripe_url():
    from services.devtools.localstripe import running_localstripe

    with running_localstripe() as url:
        yield url


@contextlib.contextmanager
def _locked_redis_db():
    """A Redis database no other run of these fixtures uses meanwhile (an flock per number)."""
    for number in REDIS_DATABASES:
        lock = open(f"/tmp/sessionpack-test-redis-db-{number}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        try:
            yield number
        finally:
            lock.close()
        return
    raise RuntimeError("every Redis test database is in use by another run")


@pytest.fixture
def redis_url():
    """An emptied Redis database of our own."""
    import redis

    from tests.servers import ensure_redis

    ensure_redis()
    with _locked_redis_db() as number:
        redis.Redis(host="127.0.0.1", port=6379, db=number).flushdb()
        yield f"redis://127.0.0.1:6379/{number}"


@pytest.fixture
def pg_redis_env(tmp_path, postgres_db, stripe_url, redis_url):
    """PostgreSQL (our own database, emptied), a Redis database of our own, localstripe (emptied)."""
    from models.db import make_engine
    from services.devtools.localstripe import reset

    engine = make_engine(postgres_db.url)
    truncate_all(engine)
    engine.dispose()
    reset(stripe_url)
    env = base_env(tmp_path)
    env.update(DATABASE_URL=postgres_db.url, BROKER_URL=redis_url,
               STRIPE_API_KEY=STRIPE_TEST_KEY, STRIPE_API_BASE=stripe_url)
    return env


@pytest.fixture
def worker_factory(tmp_path):
    """Start real workers (WorkerProcess); every one is stopped after the test."""
    workers = []

    def start(env, log_name: str = "worker.log", **kwargs) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / log_name, **kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def first_day() -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=3)


def book_paid_package(env: dict, tmp_path: Path, n: int = 3, price: str = "150.00",
                      payment_method: str = "pm_card_visa") -> tuple[dict, dict]:
    """Migrate, apply a package of `n` sessions at `price`, book it through the queue (a worker
    must run). Returns (request, booking object)."""
    assert cli(env, "migrate")[0] == 0
    code, _, err = cli(env, "config", "apply", write_json(tmp_path, "config.json", package_config(n, price=price)))
    assert code == 0, err
    request = booking_request(daily_slots(first_day(), n), payment_method=payment_method)
    code, shown, err = cli(env, "book", write_json(tmp_path, "request.json", request), "--wait", "90")
    assert code == 0 and shown["status"] == "confirmed", (shown, err)
    return request, shown
