"""What the vault lets metrics and readiness observe: counts of its key cache's hits and
misses and of the data keys it unwrapped, and each unwrap budget's use and limit, read
through its public methods and never holding an owner or a key."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from hippocrate.vault import KeyDestroyed, UnwrapBudgetExceeded, Vault, WrappedKey
from hippocrate.vault.core import BudgetUse, KeyCounts
from hippocrate.vault.providers.file import FileKeyProvider
from tests.vault.test_vault import Clock


def test_the_counts_follow_the_cache_and_the_unwraps(key_file: Path) -> None:
    clock = Clock()
    vault = Vault(FileKeyProvider(key_file), cache_ttl=10, clock=clock)
    assert vault.key_counts() == KeyCounts(hits=0, misses=0, unwraps=0)
    owner = uuid.uuid4()
    wrapped, _ = vault.new_data_key(owner)  # made here: cached, nothing unwrapped
    assert vault.key_counts() == KeyCounts(0, 0, 0)

    vault.data_key(owner, 1, lambda: wrapped)
    vault.data_key(owner, 1, lambda: wrapped)
    assert vault.key_counts() == KeyCounts(hits=2, misses=0, unwraps=0)

    clock.now = 10.5  # expired: a miss, and an unwrap through the provider
    vault.data_key(owner, 1, lambda: wrapped)
    assert vault.key_counts() == KeyCounts(hits=2, misses=1, unwraps=1)

    vault.unwrap(wrapped)  # no cache: counted as an unwrap, not a lookup
    vault.rewrap(wrapped, 1)
    assert vault.key_counts() == KeyCounts(hits=2, misses=1, unwraps=3)

    vault.forget_all()
    with pytest.raises(KeyDestroyed):
        vault.data_key(uuid.uuid4(), 1, lambda: None)  # a miss with nothing to unwrap
    assert vault.key_counts() == KeyCounts(hits=2, misses=2, unwraps=3)
    assert str(owner) not in repr(vault.key_counts())


def test_the_counts_lose_nothing_between_threads(key_file: Path) -> None:
    vault = Vault(FileKeyProvider(key_file))
    owner = uuid.uuid4()
    wrapped, _ = vault.new_data_key(owner)
    vault.forget_all()
    start = threading.Barrier(8)

    def reader() -> None:
        start.wait()
        for _ in range(200):
            vault.data_key(owner, 1, lambda: wrapped)
            vault.unwrap(wrapped)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = vault.key_counts()
    assert counts.hits + counts.misses == 1600
    assert counts.unwraps == 1600 + counts.misses  # each miss unwrapped once


def test_the_budgets_use_is_a_snapshot_that_forgets_the_past_minute(key_file: Path) -> None:
    clock = Clock()
    vault = Vault(
        FileKeyProvider(key_file),
        cache_ttl=0,
        unwrap_budget=3,
        unwrap_budgets={"anonymous": 1, "recovery": 0},
        clock=clock,
    )
    # A class given no limit (or 0) is not budgeted, so it is not there.
    assert vault.budget_use() == {
        "authenticated": BudgetUse(used=0, limit=3),
        "anonymous": BudgetUse(used=0, limit=1),
    }
    stored: dict[uuid.UUID, WrappedKey] = {}
    for _ in range(3):
        owner = uuid.uuid4()
        stored[owner], _ = vault.new_data_key(owner)
    first, second, third = stored
    vault.data_key(first, 1, lambda: stored[first])
    clock.now = 30
    vault.data_key(second, 1, lambda: stored[second])
    vault.data_key(second, 1, lambda: stored[second])  # the same owner: spent once
    vault.data_key(third, 1, lambda: stored[third], budget="anonymous")
    use = vault.budget_use()
    assert use == {"authenticated": BudgetUse(2, 3), "anonymous": BudgetUse(1, 1)}

    use["authenticated"] = BudgetUse(0, 1000)  # the copy is the caller's: no budget changes
    vault.data_key(third, 1, lambda: stored[third])
    with pytest.raises(UnwrapBudgetExceeded):
        vault.data_key(uuid.uuid4(), 1, lambda: stored[third])

    clock.now = 60.5  # the first owner's unwrap left the minute
    assert vault.budget_use()["authenticated"] == BudgetUse(2, 3)
    clock.now = 121
    assert vault.budget_use() == {"authenticated": BudgetUse(0, 3), "anonymous": BudgetUse(0, 1)}
