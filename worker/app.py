"""The Celery app, made by `make_app()`. `celery -A worker` finds the module-level `app`.

Importing this module reads no environment and touches no file: the app's configuration (broker,
beat schedule) is computed from `core.settings.Settings` the first time Celery needs it. Importing
it also registers the app with `core.wiring.use_celery_app`, so the process's container sends
its tasks through it. The broker is contacted only when a task is sent.
"""
from __future__ import annotations

from celery import Celery

from core import wiring
from core.settings import Settings

from . import broker_resilience  # noqa: F401  (keeps the worker alive across a Redis restart, see there)
from . import embedded_broker
from . import logging as _json_logs  # noqa: F401  (connects the JSON log format to Celery's signals)
from .beat import beat_schedule


def celery_config(settings: Settings) -> dict:
    """The app's configuration for these settings."""
    return dict(
        broker_url=settings.broker_url,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only when it finished; a worker that dies gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(settings.broker_url, settings.broker_visibility_timeout,
                                                          settings.broker_polling_interval),
        # Messages survive a broker restart: persistent (RabbitMQ writes them to disk; its queues,
        # Celery's default included, are declared durable), and on Redis as its AOF allows.
        task_default_delivery_mode="persistent",
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
        # Under the configured var dir (made when settings are built), wherever beat is started.
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
    )


def broker_transport_options(broker_url: str, visibility_timeout: float, polling_interval: float = 0.1) -> dict:
    """Per transport: Redis gives an unacknowledged task back after `visibility_timeout` (a worker
    that died); RabbitMQ confirms each publish (a message the CLI or the outbox handed over is on
    the broker before they go on); the embedded SQLite broker polls every `polling_interval`
    seconds while its queue is empty (worker/embedded_broker.py; kombu's default is 1 s)."""
    scheme = broker_url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        return {"visibility_timeout": visibility_timeout}
    if scheme in ("amqp", "amqps", "pyamqp"):
        return {"confirm_publish": True}
    if scheme.startswith(("sqla+", "sqlalchemy+")):
        return {"polling_interval": polling_interval}
    return {}


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings`, or for the environment's settings read at first use."""
    # Redacted task reprs (tokens, grants, names, emails hidden; the booking id shown) on every
    # message sent and every message received, whoever sent it: worker/redaction.py.
    app = Celery("sessionpack", include=["tasks"], amqp="worker.redaction:RedactingAMQP",
                 task_cls="worker.task_base:SessionpackTask")
    if settings is not None:
        app.conf.update(celery_config(settings))
    else:
        app.add_defaults(lambda: celery_config(Settings()))
    return app


embedded_broker.register()
app = make_app()
wiring.use_celery_app(lambda: app)
