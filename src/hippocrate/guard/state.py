"""Where the guard keeps its counters: in process (one machine) or in Redis (several
app processes). Both answer the same questions, atomically."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Protocol

import redis
from redis.exceptions import RedisError


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

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        """Record one refused or not-found access; how many in the window."""
        ...

    def contain(self, account: uuid.UUID, reason: str) -> bool:
        """Mark ``account`` contained; False if it already was."""
        ...

    def contained(self, account: uuid.UUID) -> str | None:
        """The containment reason, or None."""
        ...

    def release(self, account: uuid.UUID) -> None: ...


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

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        with self._lock:
            times = self._refusals.setdefault(account, deque())
            times.append(now)
            while times and times[0] <= now - window:
                times.popleft()
            return len(times)

    def contain(self, account: uuid.UUID, reason: str) -> bool:
        with self._lock:
            if account in self._contained:
                return False
            self._contained[account] = reason
            return True

    def contained(self, account: uuid.UUID) -> str | None:
        with self._lock:
            return self._contained.get(account)

    def release(self, account: uuid.UUID) -> None:
        with self._lock:
            self._contained.pop(account, None)
            for key in [k for k in self._reads if k[0] == account]:
                del self._reads[key]
            self._refusals.pop(account, None)


# A sliding-window count of distinct members, atomic across processes, one round trip:
# add (member, now), drop members older than the window, count what is left.
_WINDOWED_COUNT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[3]) + 1)
return redis.call('ZCARD', KEYS[1])
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

    def refusals(self, account: uuid.UUID, *, now: float, window: float) -> int:
        try:
            member = f"{now}:{uuid.uuid4().hex}"  # every refusal counts, even at one instant
            count = self._count(keys=[self._key("refusals", account)], args=[now, member, window])
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        return int(count)

    def contain(self, account: uuid.UUID, reason: str) -> bool:
        try:
            return bool(self._redis.set(self._key("contained", account), reason, nx=True))
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None

    def contained(self, account: uuid.UUID) -> str | None:
        try:
            value = self._redis.get(self._key("contained", account))
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None
        return value.decode() if isinstance(value, bytes) else None

    def release(self, account: uuid.UUID) -> None:
        try:
            self._redis.delete(
                self._key("contained", account),
                self._key("reads", account),
                self._key("reads-day", account),
                self._key("refusals", account),
            )
        except RedisError as exc:
            raise GuardUnavailable(f"guard state unreachable: {type(exc).__name__}") from None


def clock() -> float:
    return time.time()
