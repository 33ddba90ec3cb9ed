"""Walking the chain fast: raw rows, the canonical bytes by orjson, stretches in parallel.

A walk reads the rows of one stretch of sequence numbers in order, as plain values from
the driver (no ORM object, no type processing: a server-side cursor on PostgreSQL,
``fetchmany`` batches on SQLite). The database writes the time in its canonical text
(and PostgreSQL the UUIDs); the walk checks that the time and the UUIDs have the shape
the app writes, parses the JSON columns with orjson, writes the canonical bytes with
orjson (``chain.unsafe_fast_canonical``), hashes them and compares.

The fast path never decides alone that a row is altered, nor takes a row the reference
would refuse: it takes a row only when its bytes are the reference's (``chain.py`` says
when orjson's are) and their hash is the stored one. Any other row (a digest that does
not match, a timestamp or a UUID not in the app's shape, a float, a character beyond
ASCII) is read again through the ORM's types and judged by the reference encoding,
exactly as before. So the verdicts are the reference's, row by row.

A stretch is judged on its own, except its first row's link to the stretch before it:
the walk records that row's sequence number and ``prev_hash``, and whoever joins the
stretches (``verification.join``) checks that they follow the last good row of the
previous stretch. Stretches can so be walked by several processes at once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, create_engine, func, select
from sqlalchemy.pool import NullPool

from hippocrate.audit.chain import CONTEXT, FIELDS, link, orjson_safe, unsafe_fast_canonical
from hippocrate.audit.models import AuditEvent

# The rows as the fast path reads them: the time already in its canonical text where
# the stored one has the shape the app writes (its 11th character a space), the UUIDs as
# stored (32 hex digits on SQLite, their canonical text on PostgreSQL).
SQLITE_ROWS = """
SELECT seq, prev_hash, hash, typeof(at) = 'text' AND substr(at, 11, 1) = ' ',
  substr(at, 1, 10) || 'T' || substr(at, 12) || 'Z',
  actor_account_id, actor_role, action, patient_id, resources, categories, purpose, outcome,
  request_id
FROM audit_events WHERE seq BETWEEN ? AND ? ORDER BY seq
"""
POSTGRESQL_ROWS = """
SELECT seq, prev_hash, hash, true,
  to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  actor_account_id::text, actor_role, action, patient_id::text,
  resources::text, categories::text, purpose, outcome, request_id
FROM audit_events WHERE seq BETWEEN %s AND %s ORDER BY seq
"""
# What ``chain._plain`` makes of a time: a four-digit year (``%Y`` does not pad).
# Months, hours, minutes and seconds in range; a day past the 28th is looked up (``_iso``).
_CANONICAL_AT = re.compile(
    r"[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z"
).fullmatch
_HEX = "0123456789abcdef"
_DECLINE = object()  # a value the fast path leaves to the reference
_MISSING = object()
_CACHED = 65_536  # UUIDs and category lists remembered per walk


def _sqlite_uuid(stored: Any) -> Any:
    """The canonical text of a UUID as SQLite holds it (``uuid.hex``), or _DECLINE
    when it is not 32 lowercase hex digits (the reference may read it otherwise)."""
    if type(stored) is not str or len(stored) != 32 or stored.strip(_HEX):
        return _DECLINE
    s = stored
    return f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}"


def _iso(at: str) -> bool:
    """Whether the time exists (``_CANONICAL_AT`` checks only its digits' places)."""
    try:
        datetime.fromisoformat(at)
    except ValueError:
        return False
    return True


def _postgresql_uuid(stored: Any) -> Any:
    return stored  # ``uuid::text`` is ``str(uuid.UUID)``


_TYPED = select(*[getattr(AuditEvent, name) for name in FIELDS])
_COUNT = select(func.count()).where(
    AuditEvent.seq > bindparam("after"), AuditEvent.seq <= bindparam("hi")
)


@dataclass
class Stretch:
    """What a walk over ``lo..hi`` found. ``first_seq`` and ``first_prev`` are its first
    row's, unchecked against the row before; ``last_seq``, ``last_hash`` the last row
    judged good; ``failure`` the first problem (sequence number, message), after which
    rows are counted but not judged."""

    lo: int
    hi: int
    rows: int = 0
    first_seq: int | None = None
    first_prev: bytes | None = None
    last_seq: int = 0
    last_hash: bytes = b""
    failure: tuple[int, str] | None = None
    hashes_at: dict[int, bytes] = field(default_factory=dict)
    reference_rows: int = 0  # rows judged by the reference encoding


def _batches(connection: Connection, lo: int, hi: int, batch: int) -> Generator[Sequence[Any]]:
    raw: Any = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        cursor = raw.cursor(name="hippocrate_audit_walk")  # server-side: streamed
        cursor.itersize = batch
        cursor.execute(POSTGRESQL_ROWS, (lo, hi))
    else:
        cursor = raw.cursor()
        cursor.execute(SQLITE_ROWS, (lo, hi))
    try:
        while rows := cursor.fetchmany(batch):
            yield rows
    finally:
        cursor.close()


def _reference(connection: Connection) -> Callable[[int, bytes], bytes]:
    """The reference link of the row at ``seq``: read through the ORM's types, encoded
    by ``chain.canonical`` (what verification did for every row before)."""

    def compute(seq: int, prev_hash: bytes) -> bytes:
        row = connection.execute(_TYPED.where(AuditEvent.seq == seq)).one()
        return link(prev_hash, dict(zip(FIELDS, row, strict=True)))

    return compute


def _loaded(text: Any) -> Any:
    """A JSON column's value when orjson writes it as the reference does (no float in
    it), else _DECLINE."""
    try:
        value = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return _DECLINE
    if type(value) is list:
        for item in value:
            if type(item) is not str and not orjson_safe(item):
                return _DECLINE
        return value
    return value if orjson_safe(value) else _DECLINE


def walk(
    connection: Connection,
    lo: int,
    hi: int,
    wanted: frozenset[int],
    batch: int = 20_000,
    *,
    advance: Callable[[int], None] | None = None,
) -> Stretch:
    """Judge the rows of sequence ``lo..hi`` in order (see the module's docstring).
    ``advance`` is told the rows of each batch read (a progress bar's)."""
    batches = _batches(connection, lo, hi, batch)
    try:
        return _judge(connection, batches, Stretch(lo, hi), wanted, advance)
    finally:  # at once, interrupted too: the cursor closes while its connection is open
        batches.close()


def _judge(  # noqa: PLR0912, PLR0915 (one flat loop: a call per row would cost a tenth of the walk)
    connection: Connection,
    batches: Generator[Sequence[Any]],
    found: Stretch,
    wanted: frozenset[int],
    advance: Callable[[int], None] | None,
) -> Stretch:
    hi = found.hi
    reference = _reference(connection)
    sha256, loaded, fast, iso = hashlib.sha256, _loaded, unsafe_fast_canonical, _iso
    loads = orjson.loads
    canonical_at, decline, missing = _CANONICAL_AT, _DECLINE, _MISSING
    uuid_text = _postgresql_uuid if connection.dialect.name == "postgresql" else _sqlite_uuid
    uuids: dict[Any, Any] = {None: None}
    lists: dict[Any, Any] = {}
    rows = reference_rows = 0
    expected, previous, first = 0, b"", True
    for chunk in batches:
        rows += len(chunk)
        if len(uuids) > _CACHED or len(lists) > _CACHED:  # they grow by 3 a row at most
            uuids, lists = {None: None}, {}
        for row in chunk:
            (seq, prev_hash, digest, plain, at, actor, role, action, patient, res, cats,
             purpose, outcome, request_id) = row  # fmt: skip
            if first:
                found.first_seq, found.first_prev = seq, prev_hash
                expected, previous, first = seq, prev_hash, False
            if seq != expected:
                found.failure = (expected, f"missing (next present is {seq}): a row was deleted")
            elif prev_hash != previous:
                found.failure = (
                    seq,
                    "does not follow its predecessor: a row was inserted or reordered",
                )
            else:
                body = None
                if plain and canonical_at(at) and (at[8:10] < "29" or iso(at)):
                    if (a := uuids.get(actor, missing)) is missing:
                        a = uuids[actor] = uuid_text(actor)
                    if (p := uuids.get(patient, missing)) is missing:
                        p = uuids[patient] = uuid_text(patient)
                    if (c := lists.get(cats, missing)) is missing:
                        c = lists[cats] = loaded(cats)
                    try:  # ``_loaded``, inline: this runs for every row
                        r = loads(res)
                    except (orjson.JSONDecodeError, TypeError):
                        r = decline
                    if type(r) is list:
                        for item in r:
                            if type(item) is not str and not orjson_safe(item):
                                r = decline
                                break
                    elif not orjson_safe(r):
                        r = decline
                    if (
                        a is not decline
                        and p is not decline
                        and r is not decline
                        and (c is not decline)
                    ):
                        body = fast([seq, at, a, role, action, p, r, c, purpose, outcome,
                                     request_id])  # fmt: skip
                if body is None or sha256(CONTEXT + prev_hash + body).digest() != digest:
                    reference_rows += 1
                    if reference(seq, prev_hash) != digest:
                        found.failure = (
                            seq,
                            "its content does not match its hash: the row was altered",
                        )
            if found.failure is not None:
                break
            previous = digest
            if seq in wanted:
                found.hashes_at[seq] = digest
            expected += 1
        if found.failure is not None:  # the rest is counted, not judged
            batches.close()
            rest = connection.execute(_COUNT, {"after": chunk[-1][0], "hi": hi}).scalar_one()
            rows += rest
            if advance is not None:
                advance(len(chunk) + rest)
            break
        if advance is not None:
            advance(len(chunk))
    found.rows, found.reference_rows = rows, reference_rows
    found.last_seq, found.last_hash = expected - 1, previous
    return found


# The parallel walk: one engine per process, opened by the pool's initializer.
_ENGINE: Engine | None = None


def _open(url: str) -> None:
    global _ENGINE  # noqa: PLW0603 (one engine per worker process, for its whole life)
    # Ctrl-C reaches the whole process group: the parent alone answers it (and ends the
    # workers), so that a worker says nothing of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _ENGINE = create_engine(url, poolclass=NullPool)


def _walk_in_worker(task: tuple[int, int, frozenset[int], int]) -> Stretch:
    lo, hi, wanted, batch = task
    assert _ENGINE is not None
    with _ENGINE.connect() as connection:
        return walk(connection, lo, hi, wanted, batch)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``lo..hi`` in ``parts`` contiguous stretches of (nearly) equal length."""
    size = hi - lo + 1
    bounds = [lo + size * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1] - 1) for k in range(parts) if bounds[k + 1] > bounds[k]]


def walk_in_parallel(
    url: str, stretches: Sequence[tuple[int, int]], wanted: frozenset[int], *, workers: int,
    batch: int = 20_000, advance: Callable[[int], None] | None = None,
) -> list[Stretch]:  # fmt: skip
    """Walk each stretch in one of ``workers`` processes, each with its own connection
    to the database at ``url``; the stretches come back in order, and ``advance`` is
    told each one's rows as it comes.

    Forked where the platform allows it (the workers start in milliseconds, with the
    modules already imported); they touch none of the parent's connections. Interrupted
    or failing, the parent ends the workers at once."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    tasks = [(lo, hi, frozenset(s for s in wanted if lo <= s <= hi), batch) for lo, hi in stretches]
    found: list[Stretch] = []
    with multiprocessing.get_context(method).Pool(workers, _open, (url,)) as pool:  # exit: ended
        for stretch in pool.imap(_walk_in_worker, tasks):
            found.append(stretch)
            if advance is not None:
                advance(stretch.rows)
        pool.close()
        pool.join()
    return found
