"""Keep the worker alive when Redis restarts while a task is in flight (a guard for a kombu bug).

The bug (kombu's Redis transport: 5.7.0 here, and unchanged in kombu's main branch; the same
AttributeError through another close path is celery/kombu#582, on kombu 3.0): when
the broker goes away, Celery's consumer (`Consumer.on_connection_error_after_connected`) first
calls `Connection.collect()` and then `Connection.close()`.

1. `collect()` closes the default channel. The Redis `Channel.close()` first drains the pending
   BRPOP reply, which raises a `ConnectionError` (Redis is down) before anything is closed: the
   channel stays open, with the unacknowledged task message still in its QoS. kombu ignores the
   error. `collect()` then detaches the transport from its connection
   (`transport.client = None`).
2. `close()` closes the same channel again. Now it gets as far as giving its unacknowledged
   messages back (`QoS.restore_unacked_once()`), which needs a Redis client, whose pool is built
   by `Channel._connparams()` from `self.connection.client`, now None:
   `AttributeError: 'NoneType' object has no attribute 'hostname'`. That is not a connection
   error, so nothing catches it: "Unrecoverable error" and the worker process exits. The same
   AttributeError (`... has no attribute 'client'` once the channel is closed) hits the late
   acknowledgement of the task that was running, when it finishes.

The guard: `Channel._connparams()` on a channel whose transport is detached (or that is closed)
raises a Redis `ConnectionError` instead of the AttributeError. kombu and Celery already treat that
as a lost connection: the channel close is abandoned quietly, the consumer reconnects, and a late
ack on the old channel is logged ("Couldn't ack") instead of killing the worker. Nothing else
changes: a channel with its transport attached works exactly as before.

What happens to the message that was in flight: the task keeps running in its pool process and
completes. Its message could not be given back (Redis was down) nor acknowledged (its channel is
gone), so it stays in Redis's `unacked` hash (when Redis kept its data: append-only in
docker-compose.yml) and kombu's visibility-timeout restore puts it back in the queue once it is
older than `broker_transport_options["visibility_timeout"]` (`BROKER_VISIBILITY_TIMEOUT`, 600 s by
default; checked when a worker connects, then about every 100 s). The task then runs a second
time; every task is idempotent (`acks_late`). A Redis restarted empty loses the message, as it
loses every queued one: the outbox sweep and the stalled-saga beat carry the booking on.

Version guard: applied only to the kombu versions checked to have this code
(`AFFECTED_KOMBU`, 5.0 up to 5.7.x; the reliability test
tests/reliability/test_fault_matrix.py::test_worker_survives_a_broker_restart_with_a_task_in_flight
shows whether a newer kombu still needs it). Installing twice is a no-op. `worker/app.py` imports
this module, which installs the guard.
"""
from __future__ import annotations

import functools
import logging

import kombu

logger = logging.getLogger(__name__)

#: [first, last) kombu (major, minor) versions whose Redis `Channel._connparams` reads
#: `self.connection.client` unguarded and whose channel close can run after the transport was
#: detached (read in 5.7.0, installed here, and in kombu's main branch of August 2026, 5.6.x; the
#: code is older than 5.0).
AFFECTED_KOMBU = ((5, 0), (5, 8))

_MARKER = "__sessionpack_detached_guard__"


def kombu_version() -> tuple[int, int]:
    return (int(kombu.VERSION.major), int(kombu.VERSION.minor))


def is_affected(version: tuple[int, int] | None = None) -> bool:
    low, high = AFFECTED_KOMBU
    return low <= (version or kombu_version()) < high


def _guard(connparams, connection_error: type[Exception]):
    @functools.wraps(connparams)
    def _connparams(self, *args, **kwargs):
        transport = self.connection
        if transport is None or transport.client is None:
            logger.warning(
                "kombu Redis channel used after its broker connection was closed (broker lost); "
                "treating it as a connection error. Unacknowledged messages go back to the queue "
                "after the visibility timeout")
            raise connection_error(
                "the channel's broker connection was closed (kombu transport detached from its client)")
        return connparams(self, *args, **kwargs)

    setattr(_connparams, _MARKER, True)
    return _connparams


def is_installed(channel_cls=None) -> bool:
    channel_cls = channel_cls or _redis_channel()
    return channel_cls is not None and getattr(channel_cls._connparams, _MARKER, False)


def _redis_channel():
    try:
        from kombu.transport import redis as kombu_redis
    except ImportError:  # pragma: no cover - kombu always ships the module
        return None
    return kombu_redis.Channel if kombu_redis.redis is not None else None  # None: no redis-py


def install(version: tuple[int, int] | None = None, channel_cls=None) -> bool:
    """Guard kombu's Redis `Channel._connparams` (see the module). True when the guard is in place
    (now or already); False, with a log line, when this kombu is not one it applies to."""
    channel_cls = channel_cls or _redis_channel()
    if channel_cls is None:
        return False  # redis-py is not installed: no Redis broker, nothing to guard
    if is_installed(channel_cls):
        return True
    if not is_affected(version):
        logger.warning(
            "kombu %s is outside the versions %s the Redis broker-restart guard was checked on: not "
            "applied (see worker/broker_resilience.py)", ".".join(map(str, version or kombu_version())),
            AFFECTED_KOMBU)
        return False
    from redis.exceptions import ConnectionError as RedisConnectionError

    channel_cls._connparams = _guard(channel_cls._connparams, RedisConnectionError)
    return True


install()
