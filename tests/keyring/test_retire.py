"""Retiring a root key version: refused while anything still needs it, and afterwards
every data key still unwraps, with a vault that has never seen them.

The data keys are made and stored directly (the vault's wrap, then a ``data_keys``
row): retirement concerns wrapped keys only, and no sealed field is read here.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from hippocrate.db.base import utcnow
from hippocrate.keyring.errors import RetireRefused
from hippocrate.keyring.models import DataKeyRecord, KeyState, RootRotation
from hippocrate.keyring.rotation import retire_root, rotate_root
from hippocrate.vault import UnknownKeyVersion, Vault, WrappedKey
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store


def store_data_keys(store: Store, count: int) -> list[uuid.UUID]:
    owners = [uuid.uuid4() for _ in range(count)]
    with store.sessions.begin() as session:
        for owner in owners:
            wrapped, _ = store.sessions.vault.new_data_key(owner, 1)
            session.add(
                DataKeyRecord(
                    owner_id=owner,
                    version=1,
                    root_version=wrapped.root_version,
                    wrapped=wrapped.blob,
                    state=KeyState.ACTIVE,
                )
            )
    return owners


def stored(store: Store) -> list[WrappedKey]:
    with store.sessions() as session:
        rows = session.scalars(select(DataKeyRecord).where(DataKeyRecord.wrapped.is_not(None)))
        return [WrappedKey(r.owner_id, r.version, r.root_version, r.wrapped) for r in rows]  # type: ignore[arg-type]


def test_retire_refuses_the_current_and_unknown_versions(store: Store) -> None:
    store_data_keys(store, 1)
    with pytest.raises(RetireRefused, match="version 1 is the current one"):
        retire_root(sessions=store.sessions, version=1)
    with pytest.raises(RetireRefused, match=r"version 4 is not held .* \(it holds 1\)"):
        retire_root(sessions=store.sessions, version=4)
    assert store.sessions.vault.provider.versions() == [1]


def test_retire_refuses_while_a_live_data_key_is_wrapped_under_it(store: Store) -> None:
    owners = store_data_keys(store, 3)
    # Version 2 exists (another process made it) but nothing was rewrapped.
    store.sessions.vault.provider.create_version(2)
    with pytest.raises(RetireRefused, match="version 1 still wraps 3 live data keys"):
        retire_root(sessions=store.sessions, version=1)

    # A destroyed (shredded) key depends on nothing.
    with store.sessions.begin() as session:
        session.execute(
            update(DataKeyRecord)
            .where(DataKeyRecord.owner_id == owners[0])
            .values(state=KeyState.DESTROYED, wrapped=None, destroyed_at=utcnow())
        )
    with pytest.raises(RetireRefused, match="still wraps 2 live data keys"):
        retire_root(sessions=store.sessions, version=1)
    assert store.sessions.vault.provider.versions() == [1, 2]


def test_retire_refuses_during_an_unfinished_rotation(store: Store) -> None:
    store_data_keys(store, 2)
    with store.sessions.begin() as session:
        session.add(RootRotation(target_version=2, rewrapped=0))
    store.sessions.vault.provider.create_version(2)
    with pytest.raises(RetireRefused, match="unfinished rotation to root key version 2"):
        retire_root(sessions=store.sessions, version=1)
    assert store.sessions.vault.provider.versions() == [1, 2]


def test_after_rotation_retire_leaves_every_data_key_readable(store: Store) -> None:
    store_data_keys(store, 5)
    before = stored(store)
    with pytest.raises(RetireRefused):
        retire_root(sessions=store.sessions, version=1)

    rotate_root(sessions=store.sessions, batch_size=2)
    retire_root(sessions=store.sessions, version=1)

    provider = store.sessions.vault.provider
    assert provider.versions() == [2]
    fresh = Vault(FileKeyProvider(provider._path))  # type: ignore[attr-defined]
    try:
        after = {(k.owner, k.version): k for k in stored(store)}
        for old in before:
            new = after[(old.owner, old.version)]
            assert new.root_version == 2
            assert fresh.unwrap(new).owner == old.owner
            # The old wrap is what an old backup holds: nobody can open it now.
            with pytest.raises(UnknownKeyVersion):
                fresh.unwrap(old)
    finally:
        fresh.close()
