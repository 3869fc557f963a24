"""Speaking to the broker as an outsider would: raw task messages published with kombu (no
Celery client, no argsrepr, as celery-node or a hostile frontend sends them), and the worker's
task events captured with Celery's event receiver."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

from kombu import Connection, Exchange, Queue

CELERY_EXCHANGE = Exchange("celery", "direct", durable=True)
CELERY_QUEUE = Queue("celery", CELERY_EXCHANGE, routing_key="celery")


def publish_raw(broker_url: str, task: str, args: list | tuple = (), kwargs: dict | None = None, *,
                task_id: str | None = None, headers: dict | None = None, queue: Queue = CELERY_QUEUE,
                declare: bool = True, exchange: str | None = None, confirm: bool = False) -> str:
    """Publish a task message (protocol 2, JSON) the way a non-Python client does: the task's
    headers without `argsrepr`/`kwargsrepr`. Returns the task id. `declare=False` declares
    nothing (a publish-only broker user); `exchange` overrides the queue's exchange ("" is the
    default exchange, routing by queue name); `confirm` waits for the broker's publisher confirm
    (AMQP: a refused publish raises instead of closing the channel later)."""
    task_id = task_id or str(uuid.uuid4())
    message_headers = {"lang": "js", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
                       "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
                       "origin": "raw-frontend", **(headers or {})}
    body = [list(args), dict(kwargs or {}), {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    options = {"confirm_publish": True} if confirm else {}
    with Connection(broker_url, connect_timeout=5, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish(body, exchange=queue.exchange if exchange is None else exchange,
                         routing_key=queue.routing_key, declare=[queue] if declare else [],
                         headers=message_headers,
                         correlation_id=task_id, delivery_mode=2, retry=False)
    return task_id


class EventCapture:
    """Every task event on the broker while the block runs (`with EventCapture(url) as events:`)."""

    def __init__(self, broker_url: str):
        from celery import Celery

        self.app = Celery("event-capture", broker=broker_url)
        self.events: list[dict[str, Any]] = []
        self._receiver = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def _on_event(self, event: dict) -> None:
        with self._lock:
            self.events.append(event)

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            ready = receiver.on_consume_ready

            def on_consume_ready(*args, **kwargs):  # the event queue is bound: nothing is missed
                ready(*args, **kwargs)
                self._ready.set()

            receiver.on_consume_ready = on_consume_ready
            self._receiver = receiver
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> "EventCapture":
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("the event receiver did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)

    def of(self, task_id: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("uuid") == task_id]

    def named(self, name: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("name") == name]

    def all(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60, what: str = "events") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {what} after {timeout}s; saw {[(e.get('type'), e.get('name')) for e in self.all()][-30:]}")

    def finished(self, task_id: str, timeout: float = 60) -> dict:
        """The task's task-succeeded (or -failed) event, once it came."""
        return self.wait_for(lambda: next((e for e in self.of(task_id)
                                           if e["type"] in ("task-succeeded", "task-failed")), None),
                             timeout, f"end of task {task_id}")
