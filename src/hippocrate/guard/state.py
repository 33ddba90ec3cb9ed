"""Where the guard keeps its counters and containments, so that every process of a
deployment agrees: in the database (the embedded default: the server, a second worker
and the CLI beside them share it) or in Redis (when configured). ``LocalState`` keeps
them in one process's memory, for tests of the rules alone. All answer the same
questions, atomically.

Methods take the caller's database ``session`` when there is one: the database state
then writes in the caller's transaction (SQLite has one writer; a second connection
would wait on the first). Without one it uses a short transaction of its own."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import redis
from redis.exceptions import RedisError
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hippocrate.db.base import utcnow
from hippocrate.db.engine import SessionFactory
from hippocrate.guard.models import Containment, WindowRead, WindowRefusal


class GuardUnavailable(RuntimeError):
    """The guard's state store cannot be reached: reads of patient data are refused."""


class GuardState(Protocol):
    def distinct_patients(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        window: float,
        scope: str = "reads",
    ) -> int:
        """Record that ``account`` read ``patient``; how many distinct patients it read
        in the last ``window`` seconds (this one included). Each ``scope`` is a
        separate counter (one per window length)."""
        ...

    def observe(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        windows: Sequence[tuple[str, float]],
        session: Session | None = None,
    ) -> tuple[str | None, list[int]]:
        """In one step: the containment reason if ``account`` is contained (then
        nothing is counted); else record the read in every ``(scope, seconds)`` window
        and return the distinct patients in each."""
        ...

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        """Record one refused or not-found access; how many in the window."""
        ...

    def contain(self, account: uuid.UUID, reason: str, *, session: Session | None = None) -> bool:
        """Mark ``account`` contained; False if it already was. With a ``session`` (a
        unit of work that is about to be rolled back), the mark holds in this process
        at once and in every process once :meth:`contain` runs again without one."""
        ...

    def settle(self, account: uuid.UUID, reason: str) -> bool:
        """Make a containment decided in a unit of work that rolled back hold for every
        process; True for the one call that completes it (the others, in processes that
        decided the same at the same time, skip the event and the alerts)."""
        ...

    def contained(self, account: uuid.UUID, *, session: Session | None = None) -> str | None:
        """The containment reason, or None."""
        ...

    def forget(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        scopes: Sequence[str],
        session: Session | None = None,
    ) -> None:
        """Take back the read of ``patient`` that :meth:`observe` just counted in
        ``scopes``: the guard refused it (it tripped the limit), so no data was read
        and a released principal does not carry it. Every state then holds the same
        counts after a containment (the database state's was rolled back with the
        refused unit of work already)."""
        ...

    def release(self, account: uuid.UUID, *, session: Session | None = None) -> None:
        """Lift ``account``'s containment. Its read windows and refusals are kept: a
        released principal starts from the counts it had, never from zero."""
        ...


class LocalState:
    """In-process state, for the embedded default (one app process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[tuple[uuid.UUID, str], dict[uuid.UUID, float]] = {}
        self._refusals: dict[uuid.UUID, deque[float]] = {}
        self._contained: dict[uuid.UUID, str] = {}

    def distinct_patients(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        window: float,
        scope: str = "reads",
    ) -> int:
        with self._lock:
            seen = self._reads.setdefault((account, scope), {})
            seen[patient] = now
            for old in [p for p, at in seen.items() if at <= now - window]:
                del seen[old]
            return len(seen)

    def observe(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        windows: Sequence[tuple[str, float]],
        session: Session | None = None,
    ) -> tuple[str | None, list[int]]:
        reason = self.contained(account)
        if reason is not None:
            return reason, []
        counts = [
            self.distinct_patients(account, patient, now=now, window=seconds, scope=scope)
            for scope, seconds in windows
        ]
        return None, counts

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        with self._lock:
            times = self._refusals.setdefault(account, deque())
            times.append(now)
            while times and times[0] <= now - window:
                times.popleft()
            return len(times)

    def contain(self, account: uuid.UUID, reason: str, *, session: Session | None = None) -> bool:
        with self._lock:
            if account in self._contained:
                return False
            self._contained[account] = reason
            return True

    def settle(self, account: uuid.UUID, reason: str) -> bool:
        return True  # ``contain`` already held it, for the one process there is

    def contained(self, account: uuid.UUID, *, session: Session | None = None) -> str | None:
        with self._lock:
            return self._contained.get(account)

    def forget(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        scopes: Sequence[str],
        session: Session | None = None,
    ) -> None:
        with self._lock:
            for scope in scopes:
                self._reads.get((account, scope), {}).pop(patient, None)

    def release(self, account: uuid.UUID, *, session: Session | None = None) -> None:
        with self._lock:
            self._contained.pop(account, None)  # the windows keep counting


# A sliding-window count of distinct members, atomic across processes, one round trip:
# add (member, now), drop members older than the window, count what is left.
_WINDOWED_COUNT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[3]) + 1)
return redis.call('ZCARD', KEYS[1])
"""


# The whole read check in one round trip: the containment flag, then every window.
_OBSERVE = """
local reason = redis.call('GET', KEYS[1])
if reason then return {reason} end
local counts = {''}
for i = 2, #KEYS do
  local window = tonumber(ARGV[i + 1])
  redis.call('ZADD', KEYS[i], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[1] - window)
  redis.call('EXPIRE', KEYS[i], math.ceil(window) + 1)
  counts[#counts + 1] = redis.call('ZCARD', KEYS[i])
end
return counts
"""


class RedisState:
    """Shared state in Redis: every app process sees the same counters and
    containments. Any Redis failure raises ``GuardUnavailable`` (fail closed)."""

    def __init__(self, url: str, *, prefix: str = "hippocrate:guard:") -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30
        )
        self._prefix = prefix
        self._count = self._redis.register_script(_WINDOWED_COUNT)
        self._observe = self._redis.register_script(_OBSERVE)

    def _key(self, kind: str, account: uuid.UUID) -> str:
        return f"{self._prefix}{kind}:{account}"

    def distinct_patients(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        window: float,
        scope: str = "reads",
    ) -> int:
        try:
            count = self._count(keys=[self._key(scope, account)], args=[now, str(patient), window])
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        return int(count)

    def observe(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        windows: Sequence[tuple[str, float]],
        session: Session | None = None,
    ) -> tuple[str | None, list[int]]:
        keys = [self._key("contained", account), *(self._key(s, account) for s, _ in windows)]
        args: list[str | float] = [now, str(patient), *(seconds for _, seconds in windows)]
        try:
            reply = self._observe(keys=keys, args=args)
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        first, *counts = reply
        if first:
            return (first.decode() if isinstance(first, bytes) else str(first)), []
        return None, [int(c) for c in counts]

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        try:
            member = f"{now}:{uuid.uuid4().hex}"  # every refusal counts, even at one instant
            count = self._count(keys=[self._key("refusals", account)], args=[now, member, window])
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        return int(count)

    def contain(self, account: uuid.UUID, reason: str, *, session: Session | None = None) -> bool:
        try:
            return bool(self._redis.set(self._key("contained", account), reason, nx=True))
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None

    def settle(self, account: uuid.UUID, reason: str) -> bool:
        return True  # ``contain`` set it with NX: only one process saw it new

    def contained(self, account: uuid.UUID, *, session: Session | None = None) -> str | None:
        try:
            value = self._redis.get(self._key("contained", account))
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        return value.decode() if isinstance(value, bytes) else None

    def forget(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        scopes: Sequence[str],
        session: Session | None = None,
    ) -> None:
        try:
            pipe = self._redis.pipeline(transaction=True)
            for scope in scopes:
                pipe.zrem(self._key(scope, account), str(patient))
            pipe.execute()
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None

    def release(self, account: uuid.UUID, *, session: Session | None = None) -> None:
        try:
            # Only the mark: the windows keep counting (a release is no fresh budget).
            self._redis.delete(self._key("contained", account))
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None


class DatabaseState:
    """Shared state in the database: the embedded default, where the server, a second
    worker and the CLI share one SQLite file (or one PostgreSQL). Any database failure
    raises ``GuardUnavailable`` (fail closed).

    A containment decided inside a unit of work that will be rolled back is held in
    this process at once (``_pending``) and written for every process when the guard
    completes it in a transaction of its own; a pending mark lapses after
    ``PENDING_SECONDS`` if that never happens (the process died)."""

    PENDING_SECONDS = 30.0
    PRUNE_EVERY = 64

    def __init__(self, sessions: SessionFactory, *, now: Any = None) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, tuple[str, float]] = {}
        self._now = now or time.monotonic
        self._checks = 0

    def _run(self, session: Session | None, work: Any) -> Any:
        try:
            if session is not None:
                with session.no_autoflush:
                    return work(session)
            with self._sessions.begin() as own:
                return work(own)
        except SQLAlchemyError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None

    def _prune_due(self) -> bool:
        """Rows that left their window are not counted; they are deleted now and then
        (one read check in ``PRUNE_EVERY``), off the hot path."""
        with self._lock:
            self._checks += 1
            return self._checks % self.PRUNE_EVERY == 1

    def _upsert(self, session: Session) -> Any:
        dialect = session.get_bind().dialect.name
        return pg_insert if dialect == "postgresql" else sqlite_insert

    def distinct_patients(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        window: float,
        scope: str = "reads",
    ) -> int:
        return self.observe(account, patient, now=now, windows=[(scope, window)])[1][0]

    def observe(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        now: float,
        windows: Sequence[tuple[str, float]],
        session: Session | None = None,
    ) -> tuple[str | None, list[int]]:
        def work(db: Session) -> tuple[str | None, list[int]]:
            if db.get_bind().dialect.name == "postgresql":
                # One read check per account at a time, across processes, until the
                # unit of work ends: concurrent first reads cannot both count under the
                # limit. (SQLite's single writer serialises them already.)
                db.execute(select(func.pg_advisory_xact_lock(_lock_key(account))))
            reason = self._contained(db, account)
            if reason is not None or not windows:
                return reason, []
            # Three statements whatever the number of windows: the containment above,
            # one upsert of (patient, now) into every window, one count of each.
            insert = self._upsert(db)(WindowRead).values(
                [
                    {"account_id": account, "scope": scope, "patient_id": patient, "at": now}
                    for scope, _ in windows
                ]
            )
            db.execute(
                insert.on_conflict_do_update(
                    index_elements=["account_id", "scope", "patient_id"],
                    set_={"at": insert.excluded.at},
                )
            )
            live = [
                and_(WindowRead.scope == scope, WindowRead.at > now - seconds)
                for scope, seconds in windows
            ]
            counted = db.execute(
                select(WindowRead.scope, func.count())
                .where(WindowRead.account_id == account, or_(*live))
                .group_by(WindowRead.scope)
            )
            found: dict[str, int] = {row[0]: row[1] for row in counted}
            if self._prune_due():
                for scope, seconds in windows:
                    db.execute(
                        delete(WindowRead).where(
                            WindowRead.account_id == account,
                            WindowRead.scope == scope,
                            WindowRead.at <= now - seconds,
                        )
                    )
            return None, [int(found.get(scope, 0)) for scope, _ in windows]

        result: tuple[str | None, list[int]] = self._run(session, work)
        return result

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        def work(db: Session) -> int:
            db.add(WindowRefusal(account_id=account, at=now))
            db.flush()
            mine = WindowRefusal.account_id == account
            db.execute(delete(WindowRefusal).where(mine, WindowRefusal.at <= now - window))
            return int(db.scalar(select(func.count()).select_from(WindowRefusal).where(mine)) or 0)

        count: int = self._run(None, work)
        return count

    def _contained(self, db: Session, account: uuid.UUID) -> str | None:
        with self._lock:
            pending = self._pending.get(account)
            if pending is not None and pending[1] > self._now():
                return pending[0]
        found: str | None = db.scalar(
            select(Containment.reason).where(Containment.account_id == account)
        )
        return found

    def contain(self, account: uuid.UUID, reason: str, *, session: Session | None = None) -> bool:
        if session is not None:
            if self.contained(account, session=session) is not None:
                return False
            with self._lock:
                self._pending[account] = (reason, self._now() + self.PENDING_SECONDS)
            return True

        return self.settle(account, reason)

    def settle(self, account: uuid.UUID, reason: str) -> bool:
        def work(db: Session) -> bool:
            # The primary key arbitrates between processes that contained at once.
            table = Containment.__table__
            inserted = db.connection().execute(
                self._upsert(db)(table)
                .values(account_id=account, reason=reason[:200], contained_at=utcnow())
                .on_conflict_do_nothing(index_elements=["account_id"])
                .returning(table.c.account_id)
            )
            return inserted.first() is not None

        new: bool = self._run(None, work)
        with self._lock:
            self._pending.pop(account, None)
        return new

    def contained(self, account: uuid.UUID, *, session: Session | None = None) -> str | None:
        found: str | None = self._run(session, lambda db: self._contained(db, account))
        return found

    def forget(
        self,
        account: uuid.UUID,
        patient: uuid.UUID,
        *,
        scopes: Sequence[str],
        session: Session | None = None,
    ) -> None:
        if session is not None:
            return  # counted in the refused unit of work, which rolls back with it

        def work(db: Session) -> None:
            db.execute(
                delete(WindowRead).where(
                    WindowRead.account_id == account,
                    WindowRead.patient_id == patient,
                    WindowRead.scope.in_(list(scopes)),
                )
            )

        self._run(None, work)

    def release(self, account: uuid.UUID, *, session: Session | None = None) -> None:
        def work(db: Session) -> None:
            # Only the mark: the windows keep counting (a release is no fresh budget).
            db.execute(delete(Containment).where(Containment.account_id == account))

        self._run(session, work)
        with self._lock:
            self._pending.pop(account, None)


def _lock_key(account: uuid.UUID) -> int:
    """A signed 64-bit advisory lock key for ``account``, in the guard's own range."""
    return int.from_bytes(account.bytes[:8], "big", signed=True) ^ 0x6775617264  # "guard"


def clock() -> float:
    return time.time()
