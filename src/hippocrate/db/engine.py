"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

Where SQLite's write lock is taken: Python's ``sqlite3`` driver (its default,
"legacy" transaction control, which SQLAlchemy keeps) runs reads outside any
transaction and sends a deferred ``BEGIN`` just before the first ``INSERT``,
``UPDATE`` or ``DELETE``; that statement takes the database's one write lock (WAL
mode: readers go on, other writers wait), held until ``COMMIT`` or ``ROLLBACK``. Nothing
sends ``BEGIN IMMEDIATE``. So the lock lasts from a unit of work's first write
statement to its end, and what decides it is when the session flushes: a session here
flushes a read only into the tables that read sees (:func:`_flush_only_what_is_read`)
and flushes the rest just before it commits, so a request that only reads, and one
whose writes are all pending, hold no write lock until their commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnClause, TextClause
from sqlalchemy.sql.selectable import TableClause

from hippocrate.db import sealed
from hippocrate.vault import Vault


class HippocrateSession(Session):
    """A session that seals pending plaintext attributes before each flush, flushes a
    query only into the tables it reads, and flushes everything before its commit
    hooks run (the audit recorder's among them)."""


sealed.install(HippocrateSession)


def _pending_tables(session: Session) -> set[str] | None:
    """The tables that the session's pending changes write to; None when a deletion is
    pending (the database may cascade it into other tables: flush as usual)."""
    if session.deleted:
        return None
    return {
        table.name
        for instance in (*session.new, *session.dirty)
        for table in inspect(instance).mapper.tables
    }


#: The tables each statement shape reads, by SQLAlchemy's cache key (the one it compiles
#: under, computed once per statement object): walking a statement costs far more.
_READS: dict[Any, frozenset[str] | None] = {}
_READS_KEPT = 4096


def _tables_read(statement: Any) -> frozenset[str] | None:
    """Every table ``statement`` names (its FROMs, subqueries, columns, a DML target);
    None when that cannot be known (text, loader options that may join other tables)."""
    key = statement._generate_cache_key()
    if key is None:
        return _walk(statement)
    try:
        return _READS[key.key]
    except KeyError:
        found = _walk(statement)
        if len(_READS) >= _READS_KEPT:
            _READS.clear()
        _READS[key.key] = found
        return found


def _walk(statement: Any) -> frozenset[str] | None:
    if getattr(statement, "_with_options", ()):
        return None
    names: set[str] = set()
    for element in visitors.iterate(statement):
        if isinstance(element, TextClause):
            return None
        if isinstance(element, TableClause):
            names.add(element.name)
        elif isinstance(element, ColumnClause) and isinstance(element.table, TableClause):
            names.add(element.table.name)
    return frozenset(names) or None


@event.listens_for(HippocrateSession, "do_orm_execute")
def _flush_only_what_is_read(state: ORMExecuteState) -> None:
    """Autoflush, narrowed: a query flushes the pending changes only when it reads a
    table they write to, which is when flushing could change its answer. Any other
    pending write stays in the session until a query needs it or the commit flushes
    it: a read does not take SQLite's write lock early (a pending touch of the sign-in
    session, a read mark, a message), and on PostgreSQL its row locks come at the end.
    Core statements (the audit trail's) still flush everything first, as SQLAlchemy
    does."""
    session = state.session
    if not session.autoflush or not (session.new or session.dirty or session.deleted):
        return
    pending = _pending_tables(session)
    read = _tables_read(state.statement)
    if pending is None or read is None or read & pending:
        return
    state.update_execution_options(autoflush=False)


@event.listens_for(HippocrateSession, "before_commit", insert=True)
def _flush_before_commit_hooks(session: Session) -> None:
    """Flush what is still pending before any other commit hook runs: sealing a pending
    value tells the audit recorder of the write, and the recorder writes its events in
    its own hook (``audit.recorder``), which must see them all."""
    session.flush()


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


#: How long a SQLite writer waits for the write lock (the driver's busy timeout), and
#: for its turn among this process's writers.
SQLITE_BUSY_SECONDS = 30.0
#: The statements before which Python's ``sqlite3`` opens a transaction (its rule).
_SQLITE_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _WriteTurns:
    """This process's SQLite writers, one at a time, each waking as the last one ends.

    SQLite has one write lock; a connection that finds it taken sleeps and retries
    (its busy handler: 1, 2, 5, 10 … 100 ms naps), so under load a writer may miss many
    turns while others take the lock between its naps, and the slowest requests wait
    for seconds. Here a connection about to send its transaction's first write waits
    for its turn first (a lock that wakes the next waiter at once) and gives it up as
    soon as that transaction commits or rolls back. A connection already inside a
    transaction holds SQLite's lock whatever happened before (it may have been given
    up waiting for a turn): it never waits for one, which could only be a deadlock.
    Another process (a second worker, the CLI) still meets SQLite's own lock, and a
    writer that waited ``timeout`` for its turn goes on to meet it too."""

    def __init__(self, timeout: float) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout
        self._holder: Any = None  # the driver's connection that writes

    def before_write(self, connection: Any) -> None:
        if self._holder is connection or connection.in_transaction:
            return
        if self._lock.acquire(timeout=self._timeout):
            self._holder = connection

    def done(self, connection: Any) -> None:
        if connection is not None and self._holder is connection:
            self._holder = None
            self._lock.release()


def _take_turns(engine: Engine) -> None:
    turns = _WriteTurns(SQLITE_BUSY_SECONDS)
    dialect: Any = engine.dialect  # this engine's own: its commits and rollbacks only
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _driver(connection: Any) -> Any:
        return getattr(connection, "dbapi_connection", connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip()[:7].upper().startswith(_SQLITE_WRITES):
            turns.before_write(_driver(conn.connection))

    def do_commit(connection: Any) -> None:
        try:
            commit(connection)
        finally:
            turns.done(_driver(connection))

    def do_rollback(connection: Any) -> None:
        try:
            rollback(connection)
        finally:
            turns.done(_driver(connection))

    # The turn ends with the transaction (committed, rolled back, or rolled back when
    # the pool takes the connection back), or with the connection itself.
    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
    for name in ("checkin", "close", "detach", "invalidate"):
        event.listen(engine, name, lambda dbapi, *_: turns.done(dbapi))


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, **kwargs)
        _take_turns(engine)

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
    kwargs.setdefault("pool_recycle", RECYCLE_SECONDS)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


#: A pooled PostgreSQL connection is replaced once this old (a server or a proxy
#: between may close connections that lived long).
RECYCLE_SECONDS = 1800
#: A pooled connection idle this long is checked before it is used again.
IDLE_PING_SECONDS = 30.0
_CHECKED_IN = "hippocrate.checked_in_at"


def _ping_when_idle(engine: Engine) -> None:
    """Check a connection on checkout only if it sat idle in the pool: under load a
    connection comes back to the pool and leaves it again within milliseconds, and a
    ping per checkout (``pool_pre_ping``) would be one more round trip per request for
    nothing. A connection idle for ``IDLE_PING_SECONDS`` is pinged first; a dead one
    is discarded and the pool hands out a fresh one (``DisconnectionError``), so a
    restarted server costs no request. ``pool_recycle`` bounds every connection's age."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_CHECKED_IN, None)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise DisconnectionError(f"an idle connection is gone: {type(exc).__name__}") from exc
        if not alive:
            raise DisconnectionError("an idle connection is gone")


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
