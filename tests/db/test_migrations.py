"""The schema changes only through migrations: models and migrations must agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hippocrate.db.migrate import current_revision, upgrade
from hippocrate.migrations.registry import Base
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


def test_sqlite_connections_zero_deleted_content_and_check_foreign_keys(
    sqlite_store: Store,
) -> None:
    """CRYPTO.md says shredded keys do not linger in free pages: secure_delete is on for
    every connection, with foreign keys and WAL."""
    from sqlalchemy import text

    with sqlite_store.engine.connect() as connection:
        pragmas = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("secure_delete", "foreign_keys", "journal_mode")
        }
    assert pragmas == {"secure_delete": 1, "foreign_keys": 1, "journal_mode": "wal"}
