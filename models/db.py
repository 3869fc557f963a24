"""Engine creation and schema migration (Alembic, run programmatically)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(database_url: str, *, clock: Callable[[], datetime] | None = None, **kwargs) -> Engine:
    """An engine for the URL. SQLite gets WAL, a busy timeout and write-locking transactions.

    `clock` is the service's clock (the container's): every timestamp column's default reads
    it through the engine's execution options, so stored times and the times they are compared
    with come from one clock. Writing such a row through an engine without one raises NoClock.

    On SQLite every transaction starts with BEGIN IMMEDIATE: the overlap check and the insert
    of a booking's sessions then run under the database's single write lock, which is SQLite's
    equivalent of PostgreSQL's exclusion constraint.
    """
    # A database error's message never repeats the statement's values: they may hold a customer's
    # name and email, a task message's grant or a request body, and the message reaches logs,
    # task results and Flower.
    kwargs.setdefault("hide_parameters", True)
    if clock is not None:
        kwargs["execution_options"] = {**kwargs.get("execution_options", {}), "clock": clock}
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(database_url, **kwargs)


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> str:
    """Upgrade the schema to the newest revision (idempotent). Returns the head revision."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")
    return ScriptDirectory.from_config(cfg).get_current_head()


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """(current revision in the database or None, head revision of the code)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None, head
        return MigrationContext.configure(conn).get_current_revision(), head
