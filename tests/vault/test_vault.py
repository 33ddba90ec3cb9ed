"""The vault's data keys: wrapping bound to owner and version, the bounded short cache,
and blind indexes."""

from __future__ import annotations

import pickle
import uuid
from dataclasses import replace

import pytest

from hippocrate.vault import DecryptionError, FieldContext, KeyDestroyed, Vault
from hippocrate.vault.blind_index import BITS
from hippocrate.vault.providers.file import FileKeyProvider

A = uuid.UUID("11111111-1111-4111-8111-111111111111")
B = uuid.UUID("22222222-2222-4222-8222-222222222222")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_wrapped_key_opens_only_for_its_owner_and_version(vault: Vault) -> None:
    wrapped, key = vault.new_data_key(A)
    assert vault.unwrap(wrapped).version == 1
    context = FieldContext("patients", "email", A)
    blob = vault.seal(key, b"x@example.fr", context)
    assert vault.open(vault.unwrap(wrapped), blob, context) == b"x@example.fr"
    with pytest.raises(DecryptionError):
        vault.unwrap(replace(wrapped, owner=B))
    with pytest.raises(DecryptionError):
        vault.unwrap(replace(wrapped, version=2))


def test_data_keys_made_in_a_batch_are_each_bound_to_their_owner(vault: Vault) -> None:
    third = uuid.uuid4()
    made = vault.new_data_keys([A, B, third])
    assert [w.owner for w, _ in made] == [A, B, third]
    assert all(w.version == 1 and w.root_version == 1 for w, _ in made)
    context = FieldContext("patients", "email", A)
    blobs = [vault.seal(key, b"x@example.fr", context) for _, key in made]
    for (wrapped, _), blob in zip(made, blobs, strict=True):
        assert vault.open(vault.unwrap(wrapped), blob, context) == b"x@example.fr"
    # Each owner has a key of its own: A's key does not open B's value.
    with pytest.raises(DecryptionError):
        vault.open(vault.unwrap(made[0][0]), blobs[1], context)
    # A wrap moved to another owner, or given another version, does not unwrap.
    with pytest.raises(DecryptionError):
        vault.unwrap(replace(made[0][0], owner=B))
    with pytest.raises(DecryptionError):
        vault.unwrap(replace(made[1][0], version=2))
    assert vault.new_data_keys([]) == []


def test_a_batch_of_data_keys_is_wrapped_under_the_newest_root_version(vault: Vault) -> None:
    vault.provider.create_version(2)
    ((wrapped, _),) = vault.new_data_keys([A])
    assert wrapped.root_version == 2
    assert vault.unwrap(wrapped).owner == A


def test_rewrap_keeps_the_key_and_changes_the_root_version(vault: Vault) -> None:
    wrapped, key = vault.new_data_key(A)
    blob = vault.seal(key, b"secret", FieldContext("t", "c", A))
    vault.provider.create_version(2)
    rewrapped = vault.rewrap(wrapped, 2)
    assert rewrapped.root_version == 2
    assert rewrapped.blob != wrapped.blob
    assert vault.open(vault.unwrap(rewrapped), blob, FieldContext("t", "c", A)) == b"secret"


def test_cache_expires_and_is_bounded(key_file: object) -> None:
    clock = Clock()
    vault = Vault(FileKeyProvider(key_file), cache_size=2, cache_ttl=10, clock=clock)  # type: ignore[arg-type]
    loads: list[uuid.UUID] = []
    stored = {}
    for owner in (A, B):
        stored[owner], _ = vault.new_data_key(owner)
    vault.forget_all()

    def loader(owner: uuid.UUID):  # type: ignore[no-untyped-def]
        def load():  # type: ignore[no-untyped-def]
            loads.append(owner)
            return stored[owner]

        return load

    vault.data_key(A, 1, loader(A))
    vault.data_key(A, 1, loader(A))
    assert loads == [A]  # second read from cache
    clock.now = 10.5
    vault.data_key(A, 1, loader(A))
    assert loads == [A, A]  # expired: unwrapped again
    third = uuid.uuid4()
    stored[third], _ = vault.new_data_key(third)
    vault.data_key(B, 1, loader(B))  # cache holds at most two keys: A is evicted
    vault.data_key(A, 1, loader(A))
    assert loads == [A, A, B, A]


def test_destroyed_key_raises(vault: Vault) -> None:
    with pytest.raises(KeyDestroyed, match="destroyed"):
        vault.data_key(A, 1, lambda: None)


def test_forget_drops_an_owner(vault: Vault) -> None:
    wrapped, _ = vault.new_data_key(A)
    vault.forget(A)
    loads = []
    vault.data_key(A, 1, lambda: loads.append(1) or wrapped)  # type: ignore[func-returns-value]
    assert loads == [1]


def test_keys_never_print_or_pickle(vault: Vault) -> None:
    wrapped, key = vault.new_data_key(A)
    assert "redacted" in repr(key)
    assert wrapped.blob.hex() not in repr(wrapped)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def test_blind_index(vault: Vault, tmp_path: object) -> None:
    first = vault.blind_index("email", "jeanne@example.fr")
    assert first == vault.blind_index("email", "jeanne@example.fr")
    assert 0 <= first < 2 ** BITS["email"]
    # Same value, another field: another key, so another index (with overwhelming odds).
    values = [f"+3361234{n:04d}" for n in range(50)]
    assert [vault.blind_index("phone", v) for v in values] != [
        vault.blind_index("nir", v) for v in values
    ]
    # Another deployment (another index key) gives unrelated indexes.
    other = Vault(FileKeyProvider.create(tmp_path / "other.key"))  # type: ignore[operator]
    assert [vault.blind_index("email", v) for v in values] != [
        other.blind_index("email", v) for v in values
    ]
    with pytest.raises(KeyError, match="no blind index"):
        vault.blind_index("family_name", "Martin")


def test_blind_index_spreads_over_its_range(vault: Vault) -> None:
    indexes = {vault.blind_index("email", f"p{n}@example.fr") for n in range(5000)}
    assert len(indexes) > 4990  # 24 bits: collisions among 5,000 values are rare
    assert max(indexes) > 2 ** (BITS["email"] - 1)  # uses the top bit


def test_unwrap_budget_limits_distinct_keys_per_minute(key_file: object) -> None:
    from hippocrate.vault import UnwrapBudgetExceeded

    clock = Clock()
    vault = Vault(FileKeyProvider(key_file), cache_ttl=0, unwrap_budget=3, clock=clock)  # type: ignore[arg-type]
    owners = [uuid.uuid4() for _ in range(5)]
    stored = {o: vault.new_data_key(o)[0] for o in owners}
    for owner in owners[:3]:
        vault.data_key(owner, 1, lambda o=owner: stored[o])  # type: ignore[misc]
    vault.data_key(owners[0], 1, lambda: stored[owners[0]])  # the same owner again is free
    with pytest.raises(UnwrapBudgetExceeded, match="more than 3"):
        vault.data_key(owners[3], 1, lambda: stored[owners[3]])
    clock.now = 61  # a minute later the budget is back
    vault.data_key(owners[3], 1, lambda: stored[owners[3]])


def test_each_class_of_caller_spends_an_unwrap_budget_of_its_own(key_file: object) -> None:
    """Anonymous callers spending theirs leave the authenticated budget whole, and a
    class asks whether its budget is spent before doing what only a known account does."""
    from hippocrate.vault import UnwrapBudgetExceeded

    clock = Clock()
    vault = Vault(
        FileKeyProvider(key_file),  # type: ignore[arg-type]
        cache_ttl=0,
        unwrap_budget=2,
        unwrap_budgets={"anonymous": 1},
        clock=clock,
    )
    owners = [uuid.uuid4() for _ in range(4)]
    stored = {o: vault.new_data_key(o)[0] for o in owners}
    vault.data_key(owners[0], 1, lambda: stored[owners[0]], budget="anonymous")
    assert vault.budget_exhausted("anonymous")
    assert not vault.budget_exhausted("authenticated")
    with pytest.raises(UnwrapBudgetExceeded, match="more than 1"):
        vault.data_key(owners[1], 1, lambda: stored[owners[1]], budget="anonymous")
    vault.data_key(owners[1], 1, lambda: stored[owners[1]])  # authenticated: untouched
    vault.data_key(owners[2], 1, lambda: stored[owners[2]])
    with pytest.raises(UnwrapBudgetExceeded, match="more than 2"):
        vault.data_key(owners[3], 1, lambda: stored[owners[3]])
    assert not vault.budget_exhausted("recovery")  # a class given no limit is not budgeted
    vault.data_key(owners[3], 1, lambda: stored[owners[3]], budget="recovery")
    clock.now = 61
    assert not vault.budget_exhausted("anonymous")


def test_the_configured_vault_applies_the_unwrap_budget(key_file: object, tmp_path: object) -> None:
    """GUARD.md's budget is the one ``HIPPOCRATE_KEY_UNWRAP_BUDGET`` sets for the app."""
    from hippocrate.config import Settings
    from hippocrate.vault import UnwrapBudgetExceeded
    from hippocrate.vault.factory import open_vault

    vault = open_vault(Settings(key_file=key_file, key_unwrap_budget=2, key_cache_ttl=0))  # type: ignore[arg-type]
    stored = {o: vault.new_data_key(o)[0] for o in (A, B, uuid.uuid4())}
    owners = list(stored)
    vault.data_key(owners[0], 1, lambda: stored[owners[0]])
    vault.data_key(owners[1], 1, lambda: stored[owners[1]])
    with pytest.raises(UnwrapBudgetExceeded):
        vault.data_key(owners[2], 1, lambda: stored[owners[2]])
