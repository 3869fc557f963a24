"""Alembic environment: the engine comes from `models.db.migrate`, never from an ini file."""
from alembic import context

from models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: build from the environment
    from core.settings import Settings
    from models.db import make_engine

    engine = make_engine(Settings().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
