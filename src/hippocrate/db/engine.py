"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from hippocrate.db import sealed
from hippocrate.vault import Vault


class HippocrateSession(Session):
    """A session that seals pending plaintext attributes before each flush."""


sealed.install(HippocrateSession)


class UnitsOfWork(Protocol):
    """Whatever opens units of work: a ``SessionFactory``, or ``hippocrate.work.Units``
    (the same with the recorder and the guard)."""

    def begin(self) -> AbstractContextManager[Session]: ...


class BadDatabaseURL(ValueError):
    """The configured database URL cannot be used (unparsable, unknown driver)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and secure deletion.

    Raises ``BadDatabaseURL`` for a URL that cannot be parsed or names a driver that is
    not installed (the server itself is only reached on first use).
    """
    try:
        return _make_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadDatabaseURL(f"the database URL cannot be used: {reason}") from None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, connection_record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # Overwrite deleted content (shredded keys must not linger in free pages).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


class SessionFactory:
    """Opens sessions bound to one engine and one vault."""

    def __init__(self, engine: Engine, vault: Vault, keys: sealed.KeySource) -> None:
        self.engine = engine
        self.vault = vault
        self.keys = keys
        self._maker = sessionmaker(
            bind=engine, class_=HippocrateSession, expire_on_commit=False, autoflush=True
        )

    def __call__(self) -> Session:
        """A session that can seal and open, once a recorder is attached to it: bare,
        it reads no sealed value (see ``db.sealed``). Entry points open their units of
        work with ``hippocrate.work``, which attaches the recorder and the read check."""
        return self._maker(info={sealed.VAULT: self.vault, sealed.KEYS: self.keys})

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self() as session, session.begin():
            yield session


class UnauditedSessionFactory(SessionFactory):
    """Sessions that open sealed values with no recorder, no policy and no guard."""

    def __init__(self, engine: Engine, vault: Vault, keys: sealed.KeySource, why: str) -> None:
        super().__init__(engine, vault, keys)
        self.why = why

    def __call__(self) -> Session:
        return sealed.unsafe_unaudited(super().__call__(), self.why)


def unsafe_unaudited_sessions(
    engine: Engine, vault: Vault, keys: sealed.KeySource, *, why: str
) -> SessionFactory:
    """A session factory whose sessions skip the audit trail and the guard (see
    ``db.sealed.unsafe_unaudited``): for benchmarks of the store itself and tests of
    the layers below the entry points. An entry point's unit of work still attaches
    its recorder, which replaces the bypass."""
    return UnauditedSessionFactory(engine, vault, keys, why)
