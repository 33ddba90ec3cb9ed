"""Liveness and readiness: what a load balancer asks before sending requests here.

Readiness checks what a request needs, each part on its own so that the answer names
what is down: the database, the key provider and the root key versions the live data
keys are wrapped under, that records open (the newest data key unwrapped through the
provider; no field is decrypted), the guard's state store, the chainer (no audit event
waits longer than ``10 x audit_chain_seconds + 5 s``), and the notice job queue.

The route is public (a load balancer asks it), so asking it must not be a way to make
the process work: :func:`check` answers from a result at most :data:`TTL` seconds old
(one per runtime, so one per process), and callers arriving while a check runs do not
start another: they get the previous result, or wait for the running check. A failure
is kept as briefly as a success, so a part that breaks or recovers is seen within about
a second. A check that hangs (a database that does not answer) is itself a failure once
it has run :data:`TTL` seconds: callers are answered 503 naming the part it waits on,
without waiting with it.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hippocrate.guard.state import GuardUnavailable
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.ops.collectors import chain_lag
from hippocrate.runtime import Runtime
from hippocrate.vault.keys import WrappedKey

#: Seconds a load balancer should wait before asking again after a 503.
RETRY_AFTER = 5

#: Seconds a readiness result is answered again before the parts are checked anew.
TTL = 1.0


@dataclass
class Readiness:
    """The parts' verdicts (``"ok"`` or why not), and the failing ones in order."""

    report: dict[str, str] = field(default_factory=lambda: {"status": "ok"})
    failing: list[str] = field(default_factory=list)

    def fail(self, part: str, why: str) -> None:
        self.report[part] = why
        if part not in self.failing:
            self.failing.append(part)

    @property
    def ok(self) -> bool:
        return not self.failing

    def answer(self) -> dict[str, str]:
        if self.ok:
            return self.report
        return {**self.report, "status": "unavailable", "failing": ", ".join(self.failing)}


def chainer_bound(runtime: Runtime) -> float:
    """How old the oldest unchained event may be before readiness fails (seconds)."""
    return 10 * runtime.settings.audit_chain_seconds + 5


def check(runtime: Runtime) -> Readiness:
    """Readiness as the route answers it: from ``runtime``'s :class:`ReadinessCache`
    (a result at most its ``ttl`` old; one check at a time). Never raises."""
    return cache_of(runtime).get(runtime)


def check_now(runtime: Runtime, at: Callable[[str], None] = lambda part: None) -> Readiness:
    """Every part, now, each failure caught and named; never raises. ``at`` is told
    each part before it is asked (the cache names the part a hung check waits on)."""
    ready = Readiness()
    at("key_provider")
    held = _key_provider(runtime, ready)
    _database_and_records(runtime, ready, held, at)
    at("guard")
    _guard(runtime, ready)
    at("chainer")
    _chainer(runtime, ready)
    at("job_queue")
    _job_queue(runtime, ready)
    return ready


class ReadinessCache:
    """One runtime's last readiness result, and the check running, if any.

    ``ttl`` (seconds, settable: 0 checks at every call) is how long a result is
    answered again, failures as successes. While a check runs, other callers get the
    previous result if that check started less than ``ttl`` ago and the result is less
    than ``2 x ttl`` old; otherwise (the first check, or the first after a quiet
    while) they wait for it, at most until it has run ``ttl``; past that, they are
    answered a failure naming the part it waits on. So at most one check runs at a
    time whatever the callers, and no caller waits longer than ``ttl`` for an answer.
    """

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._changed = threading.Condition()
        self._last: Readiness | None = None
        self._last_at = 0.0
        self._started: float | None = None  # the running check's start
        self._part = ""  # the part the running check asks now
        self._round = 0  # checks finished

    def get(self, runtime: Runtime) -> Readiness:
        with self._changed:
            now = self._clock()
            if self._last is not None and now - self._last_at < self.ttl:
                return self._last
            if self._started is not None:
                return self._while_running(now)
            self._started, self._part = now, ""
        ready: Readiness | None = None
        try:
            ready = check_now(runtime, self._at)
        finally:
            with self._changed:
                if ready is not None:
                    self._last, self._last_at = ready, self._clock()
                self._started = None
                self._round += 1
                self._changed.notify_all()
        return ready

    @property
    def running(self) -> str | None:
        """The part the running check asks now (``""`` before the first), or None when
        no check runs."""
        with self._changed:
            return None if self._started is None else self._part

    def _at(self, part: str) -> None:
        self._part = part

    def _while_running(self, now: float) -> Readiness:
        """Another caller checks: its previous result, its result, or a failure."""
        assert self._started is not None
        started, round_ = self._started, self._round
        recent = now - started < self.ttl and now - self._last_at < 2 * self.ttl
        if self._last is not None and recent:
            return self._last
        deadline = started + self.ttl
        while self._round == round_ and (remaining := deadline - self._clock()) > 0:
            self._changed.wait(remaining)
        if self._round != round_ and self._last is not None:
            return self._last
        overdue = Readiness()
        seconds = self._clock() - started
        overdue.fail(self._part or "readiness", f"no answer after {seconds:.1f} s")
        return overdue


_caches: dict[int, ReadinessCache] = {}
_caches_lock = threading.Lock()


def cache_of(runtime: Runtime) -> ReadinessCache:
    """``runtime``'s readiness cache, made at the first call and dropped with the
    runtime (a process has one runtime; tests make many)."""
    key = id(runtime)
    with _caches_lock:
        found = _caches.get(key)
        if found is None:
            found = _caches[key] = ReadinessCache()
            weakref.finalize(runtime, _caches.pop, key, None)
        return found


def _key_provider(runtime: Runtime, ready: Readiness) -> list[int]:
    try:
        held = runtime.sessions.vault.provider.versions()
        ready.report["root_key_version"] = str(runtime.sessions.vault.provider.current_version())
    except Exception:  # noqa: BLE001 - any failure of the provider is a failing part
        ready.fail("key_provider", "unavailable")
        return []
    ready.report["key_provider"] = "ok"
    return held


def _database_and_records(
    runtime: Runtime, ready: Readiness, held: list[int], at: Callable[[str], None]
) -> None:
    at("database")
    try:
        with runtime.sessions() as session:
            missing = session.scalars(
                select(DataKeyRecord.root_version)
                .where(DataKeyRecord.wrapped.is_not(None), DataKeyRecord.root_version.not_in(held))
                .limit(1)
            ).first()
            newest = session.execute(
                select(
                    DataKeyRecord.owner_id,
                    DataKeyRecord.version,
                    DataKeyRecord.root_version,
                    DataKeyRecord.wrapped,
                )
                .where(DataKeyRecord.wrapped.is_not(None))
                .order_by(DataKeyRecord.created_at.desc())
                .limit(1)
            ).first()
    except SQLAlchemyError:
        ready.fail("database", "unavailable")
        ready.fail("records", "not checked: the database is unavailable")
        return
    ready.report["database"] = "ok"
    if not held:
        ready.fail("records", "not checked: the key provider is unavailable")
        return
    if missing is not None:
        ready.fail("key_provider", f"root key version {missing} is not held")
    if newest is None:
        ready.report["records"] = "ok"  # no data key yet: nothing to open
        return
    owner, version, root_version, blob = newest
    assert blob is not None  # selected so
    at("records")
    try:
        # Unwrapped and dropped: no field is opened, the cache and budgets untouched.
        runtime.sessions.vault.unwrap(WrappedKey(owner, version, root_version, blob))
    except Exception:  # noqa: BLE001 - whatever the provider raises, records do not open
        ready.fail("records", "the newest data key does not unwrap")
        return
    if missing is not None:
        ready.fail("records", f"data keys wrapped under root key version {missing} cannot open")
        return
    ready.report["records"] = "ok"


def _guard(runtime: Runtime, ready: Readiness) -> None:
    try:
        assert runtime.guard is not None
        runtime.guard.state.contained(uuid.UUID(int=0))
    except (GuardUnavailable, SQLAlchemyError):  # Redis, or the database holding it
        ready.fail("guard", "unavailable")
        return
    ready.report["guard"] = "ok"


def _chainer(runtime: Runtime, ready: Readiness) -> None:
    count, age = chain_lag(runtime)
    bound = chainer_bound(runtime)
    if count and age > bound:
        ready.fail("chainer", f"an audit event waits for {age:.0f} s (bound: {bound:g} s)")
        return
    ready.report["chainer"] = "ok"


def _job_queue(runtime: Runtime, ready: Readiness) -> None:
    """The notice queue's storage answers (``hippocrate.breach.jobs``: Redis when set,
    else ``DATA_DIR/jobs.sqlite3``). Asked directly rather than through the process's
    queue, which is made once and kept."""
    settings = runtime.settings
    try:
        if settings.redis_url:
            _redis(settings.redis_url).ping()
        else:
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = settings.data_dir / JOBS_FILE
            with contextlib.closing(sqlite3.connect(path, timeout=2)) as database:
                database.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except (redis.RedisError, sqlite3.Error, OSError):
        ready.fail("job_queue", "unavailable")
        return
    ready.report["job_queue"] = "ok"


#: The job queue's file in the embedded default (``hippocrate.breach.jobs``).
JOBS_FILE = "jobs.sqlite3"


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def live() -> dict[str, str]:
    """Liveness: the process answers. Nothing else is asked, so a load balancer does
    not restart a process because the database is down."""
    return {"status": "ok", "at": datetime.now(UTC).isoformat(timespec="seconds")}
