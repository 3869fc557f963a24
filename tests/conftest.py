"""Fixtures for every suite: settings in a temporary ./var, and a migrated database on the
embedded SQLite default or on PostgreSQL (`db_backend` runs a test on both)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import START, Clock, PostgresDatabase, truncate_all


# The tiers (README, "Tests"): tests/unit needs no server; every test under these folders needs
# real ones (PostgreSQL, Redis, a worker, local peers) and carries the `integration` marker, so
# `-m "not integration"` selects the unit tier wherever its tests are.
SERVER_TIERS = ("integration", "reliability", "e2e")


def pytest_configure(config):
    os.environ.setdefault("SESSIONPACK_VAR_DIR", "/tmp/sessionpack-pytest-var")


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).parent
    for item in items:
        parts = Path(str(item.path)).relative_to(tests_dir).parts
        if parts and parts[0] in SERVER_TIERS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_db():
    from tests.servers import ensure_postgres
    from models.db import make_engine, migrate

    ensure_postgres()
    db = PostgresDatabase()
    engine = make_engine(db.url)
    migrate(engine)
    engine.dispose()
    yield db
    db.drop()


def make_settings(tmp_path, database_url: str, **overrides):
    from core.settings import Settings

    var = tmp_path / "var"
    var.mkdir(exist_ok=True)
    base = dict(var_dir=var, database_url=database_url, broker_url=f"sqla+sqlite:///{var / 'broker.db'}",
                secret_key="test-secret-key-0123456789abcdef", public_base_url="https://book.example.com")
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(params=["sqlite", "postgres"])
def db_backend(request):
    return request.param


@pytest.fixture
def clock():
    return Clock(START)


@pytest.fixture
def container(request, tmp_path, clock):
    """A migrated database and a container on it. Uses `db_backend` when the test asks for
    both databases, the embedded SQLite default otherwise."""
    from models.db import migrate
    from core.wiring import build_container

    backend = request.getfixturevalue("db_backend") if "db_backend" in request.fixturenames else "sqlite"
    if backend == "postgres":
        pg = request.getfixturevalue("postgres_db")
        settings = make_settings(tmp_path, pg.url)
    else:
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'var' / 'sessionpack.db'}")
    c = build_container(settings, clock=clock)
    if backend == "postgres":
        truncate_all(c.engine)
    else:
        migrate(c.engine)
    yield c
    c.engine.dispose()


@pytest.fixture
def cli_env(tmp_path):
    """Environment for running the CLI as a subprocess on the embedded defaults in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BROKER_URL", "STRIPE_", "SMTP_"))}
    env["SESSIONPACK_VAR_DIR"] = str(tmp_path / "var")
    env["SECRET_KEY"] = "test-secret-key-0123456789abcdef"
    return env


@pytest.fixture(autouse=True)
def _calendar_files_as_icalendar_builds_them(monkeypatch):
    """Every calendar file a test makes in this process is parsed with icalendar and compared
    with the file icalendar builds from the same events (the module writes them from a template):
    same components, properties, parameters and values, same bytes."""
    from services.notifications import ics
    from tests.unit.ics_reference import assert_same_file, calendar

    write = ics._calendar

    def checked(view, sessions, audience, now, status, method):
        sessions = list(sessions)
        text = write(view, sessions, audience, now, status, method)
        assert_same_file(text, calendar(view, sessions, audience, now, status, method))
        return text

    checked.unchecked = write  # for the one test of where the two differ on purpose
    monkeypatch.setattr(ics, "_calendar", checked)
