"""Broker credentials: a frontend's broker user may publish task messages on the intake queue and
do nothing else.

Redis: a private `redis-server` on a free port started with exactly the users docker-compose.yml
gives it (the machine's shared Redis is never reconfigured). RabbitMQ: a vhost and users of our
own on the local server, made with rabbitmqctl and deleted afterwards, with the permissions the
README documents.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis
import yaml
from kombu import Connection, Exchange, Queue

from tests.broker import publish_raw

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def compose_redis_args(passwords: dict[str, str]) -> list[str]:
    """The redis service's command from docker-compose.yml, its ${...} passwords filled in."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    args = []
    for word in command[1:]:
        for name, value in passwords.items():
            word = word.replace(f"${{{name}:?set {name} in .env}}", value)
        assert "${" not in word, word
        args.append(word)
    return args


@pytest.fixture
def acl_redis(tmp_path):
    from services.devtools.localstripe import free_port

    passwords = {"REDIS_PASSWORD": secrets.token_hex(8), "REDIS_FRONTEND_PASSWORD": secrets.token_hex(8)}
    port = free_port()
    args = [a for a in compose_redis_args(passwords)]
    # Ours is private and throwaway: no append-only file, its files in tmp_path.
    args[args.index("--appendonly") + 1] = "no"
    log = open(tmp_path / "redis.log", "wb")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(tmp_path), *args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    service = redis.Redis(host="127.0.0.1", port=port, username="sessionpack", password=passwords["REDIS_PASSWORD"])
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "redis.log").read_text()[-1500:])
            try:
                service.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield {"port": port, "service": service,
               "service_url": f"redis://sessionpack:{passwords['REDIS_PASSWORD']}@127.0.0.1:{port}/0",
               "frontend_url": f"redis://frontend:{passwords['REDIS_FRONTEND_PASSWORD']}@127.0.0.1:{port}/0",
               "frontend": redis.Redis(host="127.0.0.1", port=port, username="frontend",
                                       password=passwords["REDIS_FRONTEND_PASSWORD"])}
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def _declare_like_the_worker(url: str) -> None:
    """What a worker does at start: declare the `celery` queue (its binding in kombu's table)."""
    with Connection(url) as conn:
        Queue("celery", Exchange("celery", "direct"), routing_key="celery")(conn.default_channel).declare()


def test_redis_frontend_user_publishes_on_the_intake_queue_and_nothing_else(acl_redis):
    service, frontend = acl_redis["service"], acl_redis["frontend"]
    _declare_like_the_worker(acl_redis["service_url"])
    # No anonymous access at all.
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=acl_redis["port"]).ping()

    # Publishing works: a raw kombu message (as celery-node does), through the task exchange and
    # through the default exchange, and Celery's own send_task with declare=[].
    ids = [publish_raw(acl_redis["frontend_url"], "sessionpack.submit_booking", [{"request_id": "r1"}],
                       declare=False),
           publish_raw(acl_redis["frontend_url"], "sessionpack.submit_booking", [{"request_id": "r2"}],
                       declare=False, exchange="")]
    from celery import Celery

    client = Celery("frontend", broker=acl_redis["frontend_url"])
    ids.append(client.send_task("sessionpack.submit_booking", args=[{"request_id": "r3"}], declare=[],
                                retry=False).id)
    assert service.llen("celery") == 3

    # The worker (the service user) takes them as usual.
    with Connection(acl_redis["service_url"]) as conn:
        queue = conn.SimpleQueue("celery", exchange_opts={"type": "direct"}, no_ack=True)
        got = [queue.get(timeout=5).headers["id"] for _ in range(3)]
        queue.close()
    assert sorted(got) == sorted(ids)

    service.lpush("celery", b"someone else's message")
    service.set("secret", "x")
    service.hset("unacked", "t1", "x")
    denied = {
        "read the queue": lambda: frontend.lrange("celery", 0, -1),
        "take a message": lambda: frontend.rpop("celery"),
        "take a message, blocking": lambda: frontend.brpop(["celery"], timeout=1),
        "delete the queue": lambda: frontend.delete("celery"),
        "trim the queue": lambda: frontend.ltrim("celery", 0, 0),
        "push onto another queue": lambda: frontend.lpush("celery.admin", "x"),
        "push into the unacked table": lambda: frontend.hset("unacked", "t2", "x"),
        "rebind the routing table": lambda: frontend.sadd("_kombu.binding.celery", "celery\x06\x16celery\x06\x16x"),
        "read another key": lambda: frontend.get("secret"),
        "list keys": lambda: frontend.keys("*"),
        "flush": lambda: frontend.flushall(),
        "configure": lambda: frontend.config_get("*"),
        "manage users": lambda: frontend.acl_list(),
        "listen to task events": lambda: frontend.execute_command("SUBSCRIBE", "/0.celeryev/worker.heartbeat"),
        "publish a fake event": lambda: frontend.publish("/0.celeryev/task.succeeded", "x"),
        "run a script": lambda: frontend.eval("return 1", 0),
    }
    allowed = []
    for what, attempt in denied.items():
        try:
            attempt()
            allowed.append(what)
        except redis.exceptions.NoPermissionError:
            pass
    assert allowed == []
    assert service.llen("celery") == 1 and service.get("secret") == b"x" and service.hlen("unacked") == 1
    # kombu through another exchange or queue: refused too.
    with pytest.raises(Exception, match="(?i)permission|NOPERM"):
        publish_raw(acl_redis["frontend_url"], "sessionpack.refund_booking", [], {}, declare=False,
                    queue=Queue("admin", Exchange("admin", "direct"), routing_key="admin"), exchange="")


# -- RabbitMQ -------------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture
def rabbit_vhost():
    from tests.servers import ensure_rabbitmq

    if shutil.which("rabbitmqctl") is None:
        raise AssertionError("rabbitmqctl is needed (the local RabbitMQ server: apt-get install rabbitmq-server)")
    ensure_rabbitmq()
    vhost, suffix = f"sessionpack-acl-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    users = {"service": (f"sp-service-{suffix}", secrets.token_hex(8)),
             "frontend": (f"sp-frontend-{suffix}", secrets.token_hex(8))}
    _rabbitmqctl("add_vhost", vhost)
    try:
        for name, password in users.values():
            _rabbitmqctl("add_user", name, password)
        # The service: everything in its vhost. The frontend (README "Broker credentials"):
        # configure nothing, read nothing, write only to the exchange that routes to the queue.
        _rabbitmqctl("set_permissions", "-p", vhost, users["service"][0], ".*", ".*", ".*")
        _rabbitmqctl("set_permissions", "-p", vhost, users["frontend"][0], "^$", "^celery$", "^$")
        yield {role: f"amqp://{name}:{password}@127.0.0.1:5672/{vhost}" for role, (name, password) in users.items()}
    finally:
        for name, _ in users.values():
            subprocess.run(["rabbitmqctl", "delete_user", name], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)


def test_rabbitmq_frontend_user_writes_only_to_the_intake_exchange(rabbit_vhost):
    from kombu.exceptions import OperationalError
    from amqp.exceptions import AccessRefused

    _declare_like_the_worker(rabbit_vhost["service"])
    with Connection(rabbit_vhost["service"]) as conn:
        Queue("admin", Exchange("admin", "direct"), routing_key="admin")(conn.default_channel).declare()
    task_id = publish_raw(rabbit_vhost["frontend"], "sessionpack.submit_booking", [{"request_id": "r1"}],
                          declare=False, confirm=True)
    with Connection(rabbit_vhost["service"]) as conn:
        queue = conn.SimpleQueue("celery", no_ack=True, queue_opts={"durable": True},
                                 exchange_opts={"type": "direct", "durable": True})
        assert queue.get(timeout=10).headers["id"] == task_id
        queue.close()

    def refused(attempt) -> bool:
        try:
            attempt()
        except (AccessRefused, OperationalError) as exc:
            return "ACCESS_REFUSED" in str(exc) or "access" in str(exc).lower()
        return False

    frontend = rabbit_vhost["frontend"]
    # The default exchange would reach any queue; another exchange another queue; declaring
    # needs the configure permission.
    assert refused(lambda: publish_raw(frontend, "x", declare=False, exchange="", confirm=True))
    assert refused(lambda: publish_raw(frontend, "x", declare=False, confirm=True,
                                       queue=Queue("admin", Exchange("admin", "direct"), routing_key="admin")))
    assert refused(lambda: publish_raw(frontend, "x", declare=True, confirm=True))

    def consume():
        with Connection(frontend) as conn:
            conn.SimpleQueue("celery", no_ack=True, queue_opts={"passive": True}).get(timeout=2)

    assert refused(consume)
