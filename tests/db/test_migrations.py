"""The schema changes only through migrations: models and migrations must agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hippocrate.db.migrate import current_revision, upgrade
from hippocrate.db.registry import Base
from tests.conftest import Store


def test_models_and_migrations_agree(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_the_check_sees_a_model_change(store: Store) -> None:
    """The comparison above can fail: a column that no migration created is reported."""
    from sqlalchemy import Column, Integer, MetaData, Table

    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("patients", extra, Column("shoe_size", Integer), extend_existing=True)
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), extra)
    assert [d[0] for d in diff] == ["add_column"]


def test_upgrade_is_idempotent_and_reaches_head(store: Store) -> None:
    upgrade(store.engine)
    assert current_revision(store.engine) is not None
    tables = set(inspect(store.engine).get_table_names())
    assert {"patients", "data_keys", "root_rotations"} <= tables
