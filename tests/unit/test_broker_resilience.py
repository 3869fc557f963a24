"""The guard on kombu's Redis channel (worker/broker_resilience.py), without a broker: a channel
whose transport was detached by the consumer's connection-loss handling raises a connection error
(which kombu and Celery recover from) instead of an AttributeError (which kills the worker)."""
from __future__ import annotations

from types import SimpleNamespace

import kombu
import pytest
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from worker import broker_resilience
from worker.broker_resilience import AFFECTED_KOMBU, install, is_affected, is_installed


class FakeChannel:
    """Stands for kombu's Redis Channel: `_connparams` reads the transport's client."""

    def __init__(self, client):
        self.connection = SimpleNamespace(client=client)

    def _connparams(self, asynchronous=False):
        return {"host": self.connection.client.hostname, "asynchronous": asynchronous}


def _fresh_fake():
    return type("FakeChannel", (FakeChannel,), {"_connparams": FakeChannel._connparams})


def test_the_version_guard():
    assert AFFECTED_KOMBU == ((5, 0), (5, 8))
    assert is_affected((5, 7)) and is_affected((5, 0)) and is_affected((5, 4))
    assert not is_affected((5, 8)) and not is_affected((6, 0)) and not is_affected((4, 6))


def test_installed_on_the_kombu_the_worker_runs():
    # worker/app.py imports the module, which installs the guard on kombu 5.0 to 5.7.
    assert (kombu.VERSION.major, kombu.VERSION.minor) == broker_resilience.kombu_version()
    assert is_installed() == is_affected()
    if is_affected():
        assert is_installed(kombu_redis.Channel)
        wrapped = kombu_redis.Channel._connparams
        assert install() is True  # a second install changes nothing
        assert kombu_redis.Channel._connparams is wrapped
        assert not getattr(wrapped.__wrapped__, "__sessionpack_detached_guard__", False)  # one layer only


def test_not_applied_outside_the_affected_versions(caplog):
    cls = _fresh_fake()
    original = cls._connparams
    with caplog.at_level("WARNING", logger="worker.broker_resilience"):
        assert install(version=(5, 8), channel_cls=cls) is False
    assert cls._connparams is original and not is_installed(cls)
    assert "not applied" in caplog.text


def test_install_is_idempotent():
    cls = _fresh_fake()
    assert install(version=(5, 7), channel_cls=cls) is True
    guarded = cls._connparams
    assert install(version=(5, 7), channel_cls=cls) is True
    assert cls._connparams is guarded and is_installed(cls)


def test_an_attached_channel_works_as_before():
    cls = _fresh_fake()
    install(version=(5, 7), channel_cls=cls)
    channel = cls(client=SimpleNamespace(hostname="redis.internal"))
    assert channel._connparams(asynchronous=True) == {"host": "redis.internal", "asynchronous": True}


@pytest.mark.parametrize("detach", ["client", "transport"])
def test_a_detached_channel_raises_a_connection_error(detach, caplog):
    cls = _fresh_fake()
    install(version=(5, 7), channel_cls=cls)
    channel = cls(client=SimpleNamespace(hostname="redis.internal"))
    if detach == "client":
        channel.connection.client = None  # Connection.collect() / _do_close_transport()
    else:
        channel.connection = None  # Transport.close_channel(): a closed channel, acked late
    with pytest.raises(RedisConnectionError, match="broker connection was closed"):
        channel._connparams()
    assert "after its broker connection was closed" in caplog.text


@pytest.mark.skipif(not is_affected(), reason="the guard is only installed on kombu 5.0 to 5.7")
def test_kombus_own_restore_path_now_fails_as_a_connection_error():
    """The worker's crash, in miniature: kombu's Redis QoS gives unacknowledged messages back on
    channel close through `Channel.pool` -> `_connparams()`, after the transport was detached."""
    channel = object.__new__(kombu_redis.Channel)  # no broker: skip __init__ (it pings Redis)
    channel._pool = None
    channel.connection = SimpleNamespace(client=None)
    qos = kombu_redis.QoS.__new__(kombu_redis.QoS)
    qos.channel, qos._delivered = channel, {"tag-1": object()}
    with pytest.raises(kombu_redis.Transport.connection_errors) as caught:
        qos.restore_unacked()
    assert not isinstance(caught.value, AttributeError)
