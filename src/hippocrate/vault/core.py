"""The vault: the few recipes the rest of Hippocrate uses to protect data.

It knows nothing of the web, the ORM or the domain. Callers hand it bytes and a
:class:`FieldContext` and get bytes back; keys stay inside, as opaque handles.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from hippocrate.vault.blind_index import BlindIndexer
from hippocrate.vault.errors import KeyDestroyed, KeyProviderError, UnwrapBudgetExceeded
from hippocrate.vault.fields import FieldContext, open_sealed, seal
from hippocrate.vault.keys import DATA_KEY_BYTES, DataKey, WrappedKey, wrap_binding
from hippocrate.vault.providers.base import KeyProvider


class KeyCounts(NamedTuple):
    """What a vault did with data keys since it was made (counts only, no owner):
    lookups of its key cache that found the key (``hits``) or not (``misses``), and
    data keys unwrapped through the key provider (``unwraps``: by :meth:`Vault.data_key`
    on a miss, by :meth:`Vault.unwrap` and by :meth:`Vault.rewrap`)."""

    hits: int
    misses: int
    unwraps: int


@dataclass(frozen=True)
class BudgetUse:
    """One unwrap budget now: distinct owners unwrapped in the last minute, and the
    limit."""

    used: int
    limit: int


class _KeyCache:
    """A bounded, short-lived, thread-safe cache of unwrapped data keys, counting its
    hits and misses."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[tuple[uuid.UUID, int], tuple[float, DataKey]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, owner: uuid.UUID, version: int) -> DataKey | None:
        with self._lock:
            entry = self._entries.get((owner, version))
            if entry is None:
                self.misses += 1
                return None
            expires, key = entry
            if expires <= self._clock():
                del self._entries[(owner, version)]
                self.misses += 1
                return None
            self._entries.move_to_end((owner, version))
            self.hits += 1
            return key

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.hits, self.misses

    def put(self, key: DataKey) -> None:
        if self._size == 0 or self._ttl == 0:
            return
        with self._lock:
            self._entries[(key.owner, key.version)] = (self._clock() + self._ttl, key)
            self._entries.move_to_end((key.owner, key.version))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, owner: uuid.UUID) -> None:
        with self._lock:
            for cached in [k for k in self._entries if k[0] == owner]:
                del self._entries[cached]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class _UnwrapBudget:
    """At most ``limit`` distinct owners' keys unwrapped per sliding minute."""

    WINDOW = 60.0

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._recent: OrderedDict[uuid.UUID, float] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = self._clock()
        while self._recent and next(iter(self._recent.values())) <= now - self.WINDOW:
            self._recent.popitem(last=False)

    def spend(self, owner: uuid.UUID) -> None:
        with self._lock:
            self._expire()
            now = self._clock()
            if owner not in self._recent and len(self._recent) >= self._limit:
                raise UnwrapBudgetExceeded(
                    f"more than {self._limit} patients' keys unwrapped in a minute"
                )
            self._recent[owner] = now
            self._recent.move_to_end(owner)

    def exhausted(self) -> bool:
        """Whether an owner not unwrapped this minute would be refused now."""
        with self._lock:
            self._expire()
            return len(self._recent) >= self._limit

    def use(self) -> BudgetUse:
        with self._lock:
            self._expire()
            return BudgetUse(len(self._recent), self._limit)


#: The budget class of callers acting for an authenticated principal (and of every
#: caller that names none: the CLI, jobs).
AUTHENTICATED = "authenticated"


class Vault:
    """Seal and open fields, compute blind indexes, wrap and unwrap data keys.

    Guarantees: a data key leaves the vault only wrapped under a root key held by the
    provider and bound to its owner and version; unwrapped keys are cached at most
    ``cache_ttl`` seconds and ``cache_size`` entries; every failure to open is a
    ``DecryptionError``. Not guaranteed: that plaintext handed back is wiped from
    memory (Python cannot promise it).

    Unwrapping is budgeted per class of caller (``budget`` of :meth:`data_key`): each
    class has its own count of distinct owners per minute, so that one class spending
    its budget (anonymous requests, say) never refuses another's unwraps.
    ``unwrap_budget`` is the limit of :data:`AUTHENTICATED`, ``unwrap_budgets`` those of
    the other classes; a class given no limit is not budgeted.
    """

    def __init__(
        self,
        provider: KeyProvider,
        *,
        cache_size: int = 1024,
        cache_ttl: float = 60.0,
        unwrap_budget: int | None = None,
        unwrap_budgets: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._cache = _KeyCache(cache_size, cache_ttl, clock)
        limits = dict(unwrap_budgets or {})
        if unwrap_budget:
            limits[AUTHENTICATED] = unwrap_budget
        self._budgets = {name: _UnwrapBudget(n, clock) for name, n in limits.items() if n}
        self._indexer = BlindIndexer(provider.derive_index_key)
        self._unwraps = 0
        self._unwraps_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Vault(provider={self._provider.name}, cached_keys={len(self._cache)})"

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    # -- data keys --------------------------------------------------------------------

    def new_data_key(self, owner: uuid.UUID, version: int = 1) -> tuple[WrappedKey, DataKey]:
        """A fresh random 256-bit data key for ``owner``: wrapped to store, and in use."""
        material = os.urandom(DATA_KEY_BYTES)
        root_version = self._provider.current_version()
        blob = self._provider.wrap(root_version, material, wrap_binding(owner, version))
        key = DataKey(owner, version, material)
        self._cache.put(key)
        return WrappedKey(owner, version, root_version, blob), key

    def new_data_keys(
        self, owners: Sequence[uuid.UUID], version: int = 1
    ) -> list[tuple[WrappedKey, DataKey]]:
        """:meth:`new_data_key` for each of ``owners``, in order: each owner its own
        random key, wrapped bound to that owner and ``version``, with the root key
        version read once and one call to the provider for the batch."""
        if not owners:
            return []
        materials = [os.urandom(DATA_KEY_BYTES) for _ in owners]
        root_version = self._provider.current_version()
        blobs = self._provider.wrap_many(
            root_version,
            [(m, wrap_binding(owner, version)) for owner, m in zip(owners, materials, strict=True)],
        )
        if len(blobs) != len(owners):
            raise KeyProviderError("the key provider wrapped another number of keys than asked")
        made = []
        for owner, material, blob in zip(owners, materials, blobs, strict=True):
            key = DataKey(owner, version, material)
            self._cache.put(key)
            made.append((WrappedKey(owner, version, root_version, blob), key))
        return made

    def data_key(
        self,
        owner: uuid.UUID,
        version: int,
        load: Callable[[], WrappedKey | None],
        *,
        budget: str = AUTHENTICATED,
    ) -> DataKey:
        """The unwrapped data key ``version`` of ``owner``, from cache or by unwrapping
        what ``load`` returns (``None`` means destroyed: raises ``KeyDestroyed``). An
        unwrap spends the budget of the caller's class ``budget``: past it, raises
        ``UnwrapBudgetExceeded`` (a cached key spends nothing)."""
        key = self._cache.get(owner, version)
        if key is not None:
            return key
        spender = self._budgets.get(budget)
        if spender is not None:
            spender.spend(owner)
        wrapped = load()
        if wrapped is None:
            raise KeyDestroyed(f"data key {version} of {owner} is destroyed")
        key = self.unwrap(wrapped)
        self._cache.put(key)
        return key

    def budget_exhausted(self, budget: str) -> bool:
        """Whether class ``budget`` would be refused the unwrap of a new owner now: a
        caller that must answer alike whether or not it would unwrap (sign-in, for
        known and unknown addresses) asks first."""
        spender = self._budgets.get(budget)
        return spender is not None and spender.exhausted()

    # -- observation (for metrics: counts, never an owner or a key) ------------------

    def key_counts(self) -> KeyCounts:
        """The cache's hits and misses and the unwraps since this vault was made.
        Cumulative and cheap (each is counted under a lock already taken, or one of
        its own), so a sampler may ask as often as it likes; the three are read one
        after the other, not as one atomic snapshot."""
        hits, misses = self._cache.counts()
        with self._unwraps_lock:
            unwraps = self._unwraps
        return KeyCounts(hits, misses, unwraps)

    def budget_use(self) -> dict[str, BudgetUse]:
        """Each unwrap budget's use (distinct owners in the last minute) and limit,
        by class of caller; a copy, read now: changing it changes no budget."""
        return {name: budget.use() for name, budget in self._budgets.items()}

    def _counted_unwrap(self, root_version: int, blob: bytes, binding: bytes) -> bytes:
        with self._unwraps_lock:
            self._unwraps += 1
        return self._provider.unwrap(root_version, blob, binding)

    # -- wrapping -----------------------------------------------------------------------

    def unwrap(self, wrapped: WrappedKey) -> DataKey:
        """Unwrap a stored data key (no cache); raises ``DecryptionError``."""
        material = self._counted_unwrap(
            wrapped.root_version, wrapped.blob, wrap_binding(wrapped.owner, wrapped.version)
        )
        return DataKey(wrapped.owner, wrapped.version, material)

    def rewrap(self, wrapped: WrappedKey, root_version: int) -> WrappedKey:
        """The same data key wrapped under ``root_version``; the data is untouched."""
        binding = wrap_binding(wrapped.owner, wrapped.version)
        material = self._counted_unwrap(wrapped.root_version, wrapped.blob, binding)
        blob = self._provider.wrap(root_version, material, binding)
        return WrappedKey(wrapped.owner, wrapped.version, root_version, blob)

    def forget(self, owner: uuid.UUID) -> None:
        """Drop ``owner``'s keys from the cache (after shredding or rotating them)."""
        self._cache.forget(owner)

    def forget_all(self) -> None:
        self._cache.clear()

    # -- fields -----------------------------------------------------------------------

    @staticmethod
    def seal(key: DataKey, plaintext: bytes, context: FieldContext) -> bytes:
        """Encrypt a field value for ``context`` (format in ``vault.fields``)."""
        return seal(key, plaintext, context)

    @staticmethod
    def open(key: DataKey, blob: bytes, context: FieldContext) -> bytes:
        """Decrypt a field value; raises ``DecryptionError``, never returns ciphertext."""
        return open_sealed(key, blob, context)

    def blind_index(self, field: str, normalised: str) -> int:
        """Keyed, truncated index of a normalised value, for equality lookup."""
        return self._indexer.compute(field, normalised)

    def close(self) -> None:
        self._cache.clear()
        self._provider.close()
