"""The embedded broker (`sqla+sqlite:///...`, the default): kombu's SQLAlchemy transport, with
its polling interval taken from the settings (`BROKER_POLLING_INTERVAL`, 0.1 s).

Why: a kombu virtual transport has no way to be woken up; after every poll that finds the queue
empty it sleeps `polling_interval`, one second by default. Each hop of a booking (intake, the
saga's steps, email delivery) waited half a second on average for the worker's next poll, and a
3-session package needs four of them before it is confirmed. Celery's documented knob is
`broker_transport_options={"polling_interval": ...}`, but kombu's SQLAlchemy channel hands every
transport option to `create_engine()`, which refuses the unknown argument. The channel below
keeps the options that are the transport's own out of `create_engine()`.

Each poll is one short `BEGIN IMMEDIATE` transaction on the broker file (kombu takes the write
lock to claim a message), so a shorter interval costs a little CPU while idle: at 0.1 s, ten
empty polls a second in the worker's main process (`bench.embedded` prints what it costs).
WAL on the broker file was measured too and left out: no difference beside the polling.

Registered for the `sqla+` and `sqlalchemy+` URL prefixes when `worker.app` is imported (every
process that sends or consumes tasks imports it), before any connection is made.
"""
from __future__ import annotations

from kombu import transport as kombu_transport
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import create_engine

# Transport options that are kombu's own, not create_engine()'s. kombu's channel already leaves
# out all of these but `polling_interval`.
NOT_ENGINE_OPTIONS = frozenset({
    "polling_interval", "queue_tablename", "message_tablename", "callback", "errback", "max_retries",
    "interval_start", "interval_step", "interval_max", "retry_errors",
})


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in NOT_ENGINE_OPTIONS}
        return create_engine(conninfo.hostname, **options)


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel


def register() -> None:
    """Make `sqla+...` and `sqlalchemy+...` broker URLs use this transport in this process."""
    for alias in ("sqla", "sqlalchemy"):
        kombu_transport.TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
