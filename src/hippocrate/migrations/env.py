"""Alembic environment: runs against the engine handed in by ``db.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from hippocrate.migrations.registry import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise TypeError("run migrations through hippocrate.db.migrate (or 'hippocrate init')")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
