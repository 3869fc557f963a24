"""Make sure the real servers the integration tests need are answering; start them if not.

The start commands are this machine's (see the project README); CI machines start them before
the run, but a test must never assume another run left them up.
"""
from __future__ import annotations

import glob
import os
import socket
import subprocess
import time

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.3)
    return False


def ensure_postgres() -> None:
    if port_open(PG_HOST, PG_PORT):
        return
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
    if not _wait(PG_HOST, PG_PORT, 30):
        raise RuntimeError("PostgreSQL is not answering on 127.0.0.1:5432 and could not be started")


def ensure_redis() -> None:
    if port_open(REDIS_HOST, REDIS_PORT):
        return
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
                    "--logfile", "/var/log/redis/ci.log"], check=False)
    if not _wait(REDIS_HOST, REDIS_PORT, 30):
        raise RuntimeError("Redis is not answering on 127.0.0.1:6379 and could not be started")


def ensure_rabbitmq() -> None:
    """The machine's RabbitMQ (Debian's package), started when it is not answering."""
    if port_open(RABBIT_HOST, RABBIT_PORT):
        return
    subprocess.run(["rabbitmq-server", "-detached"], check=False)
    if not _wait(RABBIT_HOST, RABBIT_PORT, 60):
        raise RuntimeError("RabbitMQ is not answering on 127.0.0.1:5672 and could not be started")
