"""Broker durability by default: the Celery app's configuration per transport, beat's schedule
under the var dir, and the deploy files' Redis with an fsynced append-only file."""
from __future__ import annotations

from tests.conftest import make_settings
from tests.unit.test_deploy_files import compose, procfile, words
from worker.app import make_app


def app_for(tmp_path, broker_url: str):
    return make_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", broker_url=broker_url))


def test_rabbitmq_gets_durable_queues_persistent_messages_and_publisher_confirms(tmp_path):
    app = app_for(tmp_path, "amqp://guest:guest@127.0.0.1:5672//")
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert app.conf.task_default_delivery_mode == "persistent"
    assert app.amqp.queues[app.conf.task_default_queue].durable is True


def test_redis_gets_its_visibility_timeout_and_the_embedded_broker_its_polling_interval(tmp_path):
    redis = app_for(tmp_path, "redis://127.0.0.1:6379/0")
    assert redis.conf.broker_transport_options == {"visibility_timeout": 600.0}
    assert app_for(tmp_path, f"sqla+sqlite:///{tmp_path / 'b.db'}").conf.broker_transport_options == {"polling_interval": 0.1}


def test_the_embedded_broker_polls_at_its_interval_and_keeps_it_out_of_create_engine(tmp_path):
    """kombu's SQLAlchemy channel hands every transport option to create_engine(), which refuses
    polling_interval; worker/embedded_broker.py's channel keeps it for the transport alone."""
    from kombu.transport.sqlalchemy import Transport as KombuTransport

    from worker.embedded_broker import Transport

    app = make_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'x.db'}",
                                 broker_url=f"sqla+sqlite:///{tmp_path / 'b.db'}", broker_polling_interval=0.25))
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport) and issubclass(Transport, KombuTransport)
        assert conn.transport.polling_interval == 0.25
        with conn.SimpleQueue("lean-test") as queue:  # a real round trip through the SQLite file
            queue.put({"n": 1})
            assert queue.get(timeout=5).payload == {"n": 1}
        assert conn.default_channel.session.bind.url.database == str(tmp_path / "b.db")


def test_beat_keeps_its_schedule_in_the_var_dir(tmp_path):
    app = app_for(tmp_path, "redis://127.0.0.1:6379/0")
    assert app.conf.beat_schedule_filename == str((tmp_path / "var").resolve() / "celerybeat-schedule")
    # The Procfile and compose leave the path to that setting: no ./var relative to where beat runs.
    assert "--schedule" not in procfile()["beat"] and "-s" not in words(procfile()["beat"])
    assert "--schedule" not in " ".join(words(compose()["services"]["beat"]["command"]))


def test_compose_redis_keeps_an_append_only_file_synced_every_second():
    command = words(compose()["services"]["redis"]["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
