"""Data keys as the store sees them: fetched, created, rotated and destroyed.

Services never commit; the caller owning the unit of work does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hippocrate.db.base import utcnow
from hippocrate.db.sealed import vault_of
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.vault import DataKey, KeyDestroyed, WrappedKey
from hippocrate.vault.core import AUTHENTICATED

_ACTIVE = "hippocrate.active_keys"

#: ``session.info`` key naming the vault's unwrap budget class of whoever acts in the
#: session (a plain string, set by the unit of work from its actor): ``ANONYMOUS``
#: before sign-in, ``RECOVERY`` for reset links delivered after the answer, else
#: ``AUTHENTICATED``. Each class spends a budget of its own (``Vault.data_key``).
UNWRAP_BUDGET = "hippocrate.unwrap_budget"
ANONYMOUS = "anonymous"
RECOVERY = "recovery"


def unwrap_budget_of(session: Session) -> str:
    """The unwrap budget class of ``session`` (``AUTHENTICATED`` when none was set)."""
    found: str = session.info.get(UNWRAP_BUDGET, AUTHENTICATED)
    return found


def _active_map(session: Session) -> dict[uuid.UUID, DataKey]:
    found: dict[uuid.UUID, DataKey] = session.info.setdefault(_ACTIVE, {})
    return found


def _wrapped(record: DataKeyRecord) -> WrappedKey | None:
    if record.state is KeyState.DESTROYED or record.wrapped is None:
        return None
    return WrappedKey(record.owner_id, record.version, record.root_version, record.wrapped)


_LOADED = "hippocrate.active_records"


def loaded_with_row(*, session: Session, record: DataKeyRecord) -> None:
    """``record``, the active data key of its owner, came in the same query as a row of
    that owner (a consultation and its patient's key): :func:`active_key` uses it
    instead of asking again, and :func:`key_for` finds it in the session. Nothing is
    unwrapped until a value is sealed or opened."""
    if record.state is KeyState.ACTIVE:
        session.info.setdefault(_LOADED, {})[record.owner_id] = record


def active_key(*, session: Session, owner: uuid.UUID) -> DataKey:
    """The key that seals new values of ``owner``; created (version 1) if none exists.

    Raises ``KeyDestroyed`` if the owner's keys were destroyed: nothing new may be
    written for a shredded owner.
    """
    known = _active_map(session).get(owner)
    if known is not None:
        return known
    vault = vault_of(session)
    loaded: DataKeyRecord | None = session.info.get(_LOADED, {}).pop(owner, None)
    records: Sequence[DataKeyRecord]
    if loaded is not None and loaded.state is KeyState.ACTIVE:
        records = [loaded]
    else:
        with session.no_autoflush:
            records = session.scalars(
                select(DataKeyRecord).where(DataKeyRecord.owner_id == owner)
            ).all()
    active = [r for r in records if r.state is KeyState.ACTIVE]
    if active:
        record = active[0]
        key = vault.data_key(
            owner, record.version, lambda: _wrapped(record), budget=unwrap_budget_of(session)
        )
    elif records:
        raise KeyDestroyed(f"the data keys of {owner} are destroyed")
    else:
        wrapped, key = vault.new_data_key(owner, 1)
        session.add(_record(wrapped, KeyState.ACTIVE))
    _active_map(session)[owner] = key
    return key


def key_for(*, session: Session, owner: uuid.UUID, version: int) -> DataKey:
    """The data key ``version`` of ``owner`` for opening a value it sealed."""
    known = _active_map(session).get(owner)
    if known is not None and known.version == version:
        return known

    def load() -> WrappedKey | None:
        with session.no_autoflush:
            record = session.get(DataKeyRecord, (owner, version))
        return None if record is None else _wrapped(record)

    return vault_of(session).data_key(owner, version, load, budget=unwrap_budget_of(session))


def destroy_keys(*, session: Session, owner: uuid.UUID) -> int:
    """Crypto-shred ``owner``: erase every wrapped data key. Irreversible once committed.

    Returns the number of key versions destroyed. Copies of the database taken before
    stay readable only to whoever also holds the root key version that wrapped them.
    """
    result: Any = session.execute(
        update(DataKeyRecord)
        .where(DataKeyRecord.owner_id == owner, DataKeyRecord.state != KeyState.DESTROYED)
        .values(state=KeyState.DESTROYED, wrapped=None, destroyed_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    _active_map(session).pop(owner, None)
    session.info.get(_LOADED, {}).pop(owner, None)
    vault_of(session).forget(owner)
    return int(result.rowcount or 0)


def _record(wrapped: WrappedKey, state: KeyState) -> DataKeyRecord:
    return DataKeyRecord(
        owner_id=wrapped.owner,
        version=wrapped.version,
        root_version=wrapped.root_version,
        wrapped=wrapped.blob,
        state=state,
    )


def start_new_version(*, session: Session, owner: uuid.UUID) -> DataKey:
    """Retire the active key of ``owner`` and make a new version the active one."""
    current = active_key(session=session, owner=owner)
    record = session.get(DataKeyRecord, (owner, current.version))
    assert record is not None
    record.state = KeyState.RETIRED
    wrapped, key = vault_of(session).new_data_key(owner, current.version + 1)
    session.add(_record(wrapped, KeyState.ACTIVE))
    _active_map(session)[owner] = key
    return key


def destroy_retired(*, session: Session, owner: uuid.UUID) -> None:
    """Erase the retired versions of ``owner`` once nothing is sealed with them."""
    session.execute(
        update(DataKeyRecord)
        .where(DataKeyRecord.owner_id == owner, DataKeyRecord.state == KeyState.RETIRED)
        .values(state=KeyState.DESTROYED, wrapped=None, destroyed_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    vault_of(session).forget(owner)


class Keyring:
    """The store's key source (``db.sealed.KeySource``): sessions carry it, so sealed
    attributes find their keys without the store importing the keyring."""

    active_key = staticmethod(active_key)
    key_for = staticmethod(key_for)


KEYRING = Keyring()
