"""The chainer: links committed events into the hash chain, in one order, off the
request path.

Units of work append their events to ``audit_pending`` with no lock (``service.append``).
:func:`chain_pending` takes the head row's lock, reads the pending events in arrival
order, computes their links after the head, inserts them into ``audit_events``, deletes
exactly those pending rows and moves the head, all in one transaction: a chainer killed
mid-batch leaves the pending rows, the chain and the head as they were, and the next run
chains them. Chainers in several processes take turns on the head's lock, so the chain
has one order, contiguous, with no event chained twice (a pending row is deleted in the
transaction that chains it).

Who chains:

- an app process runs one :class:`Chainer` (a thread) while it serves; every commit that
  appended events wakes it (:func:`after_commit`), and it runs at least every
  ``audit_chain_seconds``, so the lag between commit and chain is one batch;
- any other process (the CLI, a job, a test) chains right after each commit that
  appended events, in a transaction of its own, waiting for the head's lock.

Nothing depends on the lag: the guard keeps its own state, and the readers of the trail
(a patient's history, breach scopes, the guard's alerts) read the pending events too.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hippocrate.audit.chain import CONTEXT, FIELDS, fast_canonical, unsafe_fast_canonical
from hippocrate.audit.checkpoints import HEAD_ID
from hippocrate.audit.models import EVENT_COLUMNS, AuditEvent, AuditHead, AuditPending

log = logging.getLogger(__name__)

_HEAD = cast(Table, AuditHead.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)
_PENDING = cast(Table, AuditPending.__table__)

#: Pending events chained per transaction.
BATCH = 5000
#: Set in a session's ``info`` by ``service.append``: after its commit, the events it
#: appended are chained (:func:`after_commit`).
APPENDED = "hippocrate.audit.appended"


def chain_rows(
    rows: Sequence[Row[Any]], *, after_seq: int, after_hash: bytes
) -> tuple[list[dict[str, Any]], int, bytes]:
    """The chain's rows for pending ``rows`` linked after (``after_seq``,
    ``after_hash``), and the new head's sequence number and hash. The links are
    ``chain.link``'s, over ``fast_canonical``'s bytes (the reference's, byte for byte)."""
    chained = []
    seq, previous = after_seq, after_hash
    for row in rows:
        seq += 1
        values = {"seq": seq, **{name: getattr(row, name) for name in EVENT_COLUMNS}}
        digest = hashlib.sha256(CONTEXT + previous + _canonical(values)).digest()
        chained.append({**values, "prev_hash": previous, "hash": digest})
        previous = digest
    return chained, seq, previous


def _canonical(values: dict[str, Any]) -> bytes:
    """``chain.canonical(values)`` for a row as the columns' types read it (strings,
    UUIDs, a time, lists): orjson's bytes when its lists hold strings only and the
    bytes are the reference's (``unsafe_fast_canonical`` says), else the reference's."""
    resources, categories = values["resources"], values["categories"]
    if all(type(item) is str for item in (*resources, *categories)):
        plain = [
            None if value is None else str(value) if isinstance(value, uuid.UUID) else value
            for value in (values[name] for name in FIELDS)
        ]
        plain[1] = values["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        fast = unsafe_fast_canonical(plain)
        if fast is not None:
            return fast
    return fast_canonical(values)


def _chain_batch(engine: Engine, limit: int, *, wait: bool) -> int | None:
    """One transaction: lock the head, chain up to ``limit`` pending events. The number
    chained; None when ``wait`` is false and another chainer holds the head."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            locking = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID)
            found = connection.execute(locking.with_for_update(skip_locked=not wait)).first()
            if found is None and not wait:
                return None
        else:
            # SQLite has one writer: the update takes the database's write lock (waiting
            # up to the busy timeout), so the head read next is the latest.
            connection.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=_HEAD.c.seq))
            found = connection.execute(
                select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID)
            ).first()
        if found is None:
            raise RuntimeError("the audit head row is missing: the schema is not migrated")
        rows = connection.execute(select(_PENDING).order_by(_PENDING.c.id).limit(limit)).all()
        if not rows:
            return 0
        chained, seq, head = chain_rows(
            rows, after_seq=int(found.seq), after_hash=bytes(found.hash)
        )
        _move(connection, [r.id for r in rows], chained)
        connection.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=seq, hash=head))
        return len(rows)


#: PostgreSQL moves the rows itself: each pending row deleted and inserted into the
#: chain with its sequence number and links, one statement, no column sent back.
_MOVE = text(
    f"""
    WITH moved AS (DELETE FROM audit_pending WHERE id = ANY(:ids) RETURNING *)
    INSERT INTO audit_events (seq, {", ".join(EVENT_COLUMNS)}, prev_hash, hash)
    SELECT v.seq, {", ".join(f"m.{name}" for name in EVENT_COLUMNS)}, v.prev_hash, v.hash
    FROM moved AS m JOIN unnest(
        CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]),
        CAST(:prevs AS bytea[]), CAST(:hashes AS bytea[])
    ) AS v(id, seq, prev_hash, hash) ON m.id = v.id
    """  # noqa: S608 - the column names are the model's; every value is a parameter
)


def _move(connection: Connection, ids: list[int], chained: list[dict[str, Any]]) -> None:
    """Delete exactly the pending rows ``ids`` and insert them as ``chained``. Fails
    (the batch rolls back) when a row vanished in between: the chain never skips one."""
    if connection.dialect.name == "postgresql":
        moved = connection.execute(
            _MOVE,
            {
                "ids": ids,
                "seqs": [row["seq"] for row in chained],
                "prevs": [row["prev_hash"] for row in chained],
                "hashes": [row["hash"] for row in chained],
            },
        ).rowcount
    else:
        connection.execute(insert(_EVENTS), chained)
        moved = connection.execute(delete(_PENDING).where(_PENDING.c.id.in_(ids))).rowcount
    if moved != len(ids):
        raise ChainerConflict(f"{len(ids) - moved} pending event(s) vanished while chained")


class ChainerConflict(SQLAlchemyError):
    """A pending event changed under the chainer: the batch is rolled back, and the
    next round chains what is there."""


def chain_pending(engine: Engine, *, wait: bool = True, limit: int = BATCH) -> int:
    """Chain every event committed and not yet chained, in batches of ``limit``; how
    many were chained. ``wait=False`` returns at once when another chainer holds the
    head's lock (PostgreSQL; SQLite always waits): it will chain what it finds."""
    total = 0
    while True:
        done = _chain_batch(engine, limit, wait=wait)
        if not done:
            return total
        total += done
        if done < limit:
            return total


def pending_count(engine: Engine) -> tuple[int, datetime | None]:
    """How many events wait for the chainer, and the time of the oldest."""
    with engine.connect() as connection:
        count, oldest = connection.execute(
            select(func.count(), func.min(AuditPending.at)).select_from(_PENDING)
        ).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), oldest


class Chainer:
    """A thread that chains what is pending whenever woken, and at least every
    ``interval`` seconds, until stopped. One per app process and engine."""

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-chainer", daemon=True)
        #: When the last round ended without error (monotonic), for readiness.
        self.last_success: float | None = None
        self.failures = 0

    def start(self) -> Chainer:
        _RUNNING[id(self.engine)] = self
        self._thread.start()
        return self

    def nudge(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after a last round, so that what was committed before is chained."""
        if _RUNNING.get(id(self.engine)) is self:
            del _RUNNING[id(self.engine)]
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.round()

    def round(self) -> int:
        """One round: chain everything pending. A failure is logged and counted, never
        raised: the events stay pending and the next round retries."""
        try:
            done = chain_pending(self.engine)
        except SQLAlchemyError as exc:
            self.failures += 1
            log.warning("audit chainer round failed: %s", type(exc).__name__)
            return 0
        self.last_success = time.monotonic()
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                self.round()


#: The chainer running in this process for an engine (by ``id``): commits wake it.
_RUNNING: dict[int, Chainer] = {}


def running(engine: Engine) -> Chainer | None:
    return _RUNNING.get(id(engine))


def start(engine: Engine, interval: float) -> Chainer | None:
    """Start this process's chainer for ``engine`` (None when ``interval`` is 0: every
    commit then chains inline)."""
    if interval <= 0:
        return None
    return Chainer(engine, interval).start()


def _chain_after(engine: Engine) -> None:
    chainer = running(engine)
    if chainer is not None:
        chainer.nudge()
        return
    try:
        chain_pending(engine)
    except SQLAlchemyError as exc:
        # The events are committed and stay pending: the next chain takes them.
        log.warning("chaining after a commit failed: %s", type(exc).__name__)


#: What runs after a commit that appended events (replaceable in tests to hold the
#: events pending, as a stopped chainer would).
AFTER_COMMIT: list[Callable[[Engine], None]] = [_chain_after]


#: Set after a commit that appended events: chained once the session's transaction has
#: ended and given its connection back (a pool of one must not wait on itself).
_DUE = "hippocrate.audit.chain-due"


@event.listens_for(Session, "after_commit")
def after_commit(session: Session) -> None:
    if session.info.pop(APPENDED, False):
        session.info[_DUE] = True


@event.listens_for(Session, "after_transaction_end")
def _after_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None or not session.info.pop(_DUE, False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    for hook in AFTER_COMMIT:
        hook(engine)
