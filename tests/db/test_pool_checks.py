"""PostgreSQL connections are checked when they come back from sitting idle, not on
every checkout: a busy pool sends no ping per request (tests/consultations/
test_round_trips.py counts none), and a connection the server closed while it sat in
the pool is replaced before anyone uses it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from hippocrate.db import engine as engines
from hippocrate.db.engine import make_engine


def test_an_idle_connection_closed_by_the_server_is_replaced_unseen(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_database)
    admin = create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # While it sits in the pool, the server ends it (a restart, an idle timeout).
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        monkeypatch.setattr(engines, "IDLE_PING_SECONDS", 0.0)  # it has been idle long enough
        with engine.connect() as connection:
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_back_within_the_idle_time_is_not_pinged(postgres_database: str) -> None:
    engine = make_engine(postgres_database)
    pings = 0
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        nonlocal pings
        pings += 1
        return bool(ping(dbapi_connection))

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    try:
        for _ in range(5):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        assert pings == 0
        assert engine.pool._recycle == engines.RECYCLE_SECONDS  # ages are still bounded
    finally:
        engine.dispose()
