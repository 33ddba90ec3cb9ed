"""Key rotation.

Root key rotation rewraps every data key under a new root key version without
touching the data. It is crash-safe and resumable: the rotation is recorded before
anything changes, each batch of rewraps is one transaction (a row's wrapped bytes and
root version change together), and a rerun picks up the unfinished rotation.

Retiring a root key version removes it from the provider once nothing depends on it:
no live data key wrapped under it, no unfinished rotation, and not the current version.
No audit checkpoint depends on one: checkpoints are signed by the provider's Ed25519
audit key, which is not a root key version and is never rotated with them.

Data key rotation gives one owner a new data key and re-seals every sealed field of
theirs in one transaction.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import false, func, select, text, update
from sqlalchemy.orm import Session

from hippocrate.db.base import Base, utcnow
from hippocrate.db.engine import SessionFactory, UnitsOfWork
from hippocrate.db.sealed import SealedModel
from hippocrate.keyring.errors import RetireRefused
from hippocrate.keyring.models import DataKeyRecord, KeyState, RootRotation
from hippocrate.keyring.service import destroy_retired, start_new_version
from hippocrate.vault import WrappedKey

#: Fault injection for the crash tests: the process kills itself after this many rewraps.
FAULT_KILL_AFTER = "HIPPOCRATE_FAULT_ROTATION_KILL_AFTER"


@dataclass(frozen=True)
class RotationReport:
    target_version: int
    rewrapped: int
    resumed: bool


def _begin_or_resume(sessions: SessionFactory) -> tuple[int, int, bool]:
    provider = sessions.vault.provider
    with sessions.begin() as session:
        rotation = session.scalars(
            select(RootRotation).where(RootRotation.finished_at.is_(None)).order_by(RootRotation.id)
        ).first()
        if rotation is not None:
            return rotation.id, rotation.target_version, True
        highest = session.scalar(select(func.max(RootRotation.target_version))) or 0
        target = max(provider.current_version(), highest) + 1
        rotation = RootRotation(target_version=target, rewrapped=0)
        session.add(rotation)
        session.flush()
        return rotation.id, target, False


def rotate_root(
    *,
    sessions: SessionFactory,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    start: Callable[[int], None] | None = None,
) -> RotationReport:
    """Rewrap every live data key under a new root key version (or finish the
    rotation a crash interrupted). Older root versions stay in the provider until an
    operator retires them; data keys no longer need them once this returns.

    ``start`` is told how many data keys are left to rewrap, ``progress`` how many
    this call has rewrapped after each committed batch. Interrupted (a signal, Ctrl-C),
    the batch under way rolls back whole and a rerun resumes after the committed ones."""
    rotation_id, target, resumed = _begin_or_resume(sessions)
    sessions.vault.provider.create_version(target)
    if start is not None:
        with sessions() as session:
            start(
                int(
                    session.scalar(
                        select(func.count())
                        .select_from(DataKeyRecord)
                        .where(
                            DataKeyRecord.root_version != target,
                            DataKeyRecord.wrapped.is_not(None),
                        )
                    )
                    or 0
                )
            )
    kill_after = int(os.environ.get(FAULT_KILL_AFTER, "0") or 0)
    done = 0
    while True:
        with sessions.begin() as session:
            query = (
                select(DataKeyRecord)
                .where(DataKeyRecord.root_version != target, DataKeyRecord.wrapped.is_not(None))
                .order_by(DataKeyRecord.owner_id, DataKeyRecord.version)
                .limit(batch_size)
            )
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            records = session.scalars(query).all()
            if not records:
                break
            for record in records:
                assert record.wrapped is not None
                wrapped = WrappedKey(
                    record.owner_id, record.version, record.root_version, record.wrapped
                )
                fresh = sessions.vault.rewrap(wrapped, target)
                record.wrapped, record.root_version = fresh.blob, target
                done += 1
                if kill_after and done >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            rotation = session.get(RootRotation, rotation_id)
            assert rotation is not None
            rotation.rewrapped += len(records)
        if progress is not None:
            progress(done)
    with sessions.begin() as session:
        rotation = session.get(RootRotation, rotation_id)
        assert rotation is not None
        rotation.finished_at = utcnow()
    return RotationReport(target, done, resumed)


def _hold_writers(session: Session) -> None:
    """Make data key writers of every process wait until this transaction ends, and
    wait for those in flight: a data key a slow transaction wrapped under an older
    version before the rotation is then counted, never lost."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(text("LOCK TABLE data_keys IN SHARE MODE"))
    else:
        # SQLite has one writer at a time: a write statement (matching no row) takes
        # the write lock for the rest of the transaction.
        session.execute(
            update(RootRotation).where(false()).values(rewrapped=RootRotation.rewrapped)
        )


def retire_root(*, sessions: SessionFactory, version: int) -> None:
    """Remove root key ``version`` from the provider, for good.

    Refuses (``RetireRefused``, nothing changed) when ``version`` is not held, is the
    current version (new data keys are wrapped under it), while a rotation is
    unfinished, or while any live data key is wrapped under it. The check and the
    removal happen while data key writers are held off, so a key wrapped under
    ``version`` cannot slip in between. Afterwards no process can unwrap what was
    wrapped under it: this is what makes database backups older than the rotation
    unreadable."""
    provider = sessions.vault.provider
    held = provider.versions()
    if version not in held:
        listed = ", ".join(map(str, held))
        raise RetireRefused(
            f"root key version {version} is not held by the {provider.name} key provider "
            f"(it holds {listed})"
        )
    if version == max(held):
        raise RetireRefused(
            f"root key version {version} is the current one: new data keys are wrapped "
            "under it; run 'hippocrate keys rotate' first, then retire it"
        )
    with sessions.begin() as session:
        _hold_writers(session)
        unfinished = session.scalars(
            select(RootRotation.target_version).where(RootRotation.finished_at.is_(None))
        ).first()
        if unfinished is not None:
            raise RetireRefused(
                f"an unfinished rotation to root key version {unfinished} still needs "
                f"version {version}; run 'hippocrate keys rotate' to finish it first"
            )
        live = session.scalar(
            select(func.count())
            .select_from(DataKeyRecord)
            .where(
                DataKeyRecord.root_version == version,
                DataKeyRecord.state != KeyState.DESTROYED,
                DataKeyRecord.wrapped.is_not(None),
            )
        )
        if live:
            raise RetireRefused(
                f"root key version {version} still wraps {live} live data keys; "
                "run 'hippocrate keys rotate' first"
            )
        provider.retire_version(version)


def sealed_models() -> list[type[SealedModel]]:
    """Every mapped model with sealed attributes."""
    return sorted(
        (m.class_ for m in Base.registry.mappers if issubclass(m.class_, SealedModel)),
        key=lambda cls: cls.__name__,
    )


#: Re-seals data an owner keeps outside the database (attachment bodies) under the
#: active key; returns how many values it re-sealed.
ExternalResealer = Callable[[Session, uuid.UUID], int]


def rotate_data_key(
    *,
    session: Session,
    owner: uuid.UUID,
    progress: Callable[[int], None] | None = None,
    start: Callable[[int], None] | None = None,
) -> int:
    """Give ``owner`` a new data key and re-seal all their database fields under it.
    The old version is kept, retired, until :func:`finish_data_key_rotation` has
    re-sealed what lives outside the database. One transaction: the caller commits.
    Returns how many values were re-sealed. ``start`` is told how many rows hold
    sealed fields of ``owner``, ``progress`` each row re-sealed."""
    rows: list[SealedModel] = []
    for model in sealed_models():
        owner_column = getattr(model, model.__sealed_owner__)
        rows.extend(session.scalars(select(model).where(owner_column == owner)).all())
    if start is not None:
        start(len(rows))
    start_new_version(session=session, owner=owner)
    resealed = 0
    for row in rows:
        for name in type(row).__sealed_fields__:
            value = getattr(row, name)
            if value is not None:
                setattr(row, name, value)
                resealed += 1
        if progress is not None:
            progress(1)
    session.flush()
    return resealed


def finish_data_key_rotation(
    *, sessions: UnitsOfWork, owner: uuid.UUID, resealers: Sequence[ExternalResealer] = ()
) -> int:
    """Re-seal what ``owner`` keeps outside the database, then destroy the retired key
    versions. Crash-safe: until the last step both versions open, and rerunning the
    rotation finishes it. Returns how many external values were re-sealed."""
    with sessions.begin() as session:
        resealed = sum(reseal(session, owner) for reseal in resealers)
        destroy_retired(session=session, owner=owner)
    return resealed


def key_versions(*, session: Session) -> dict[int, int]:
    """How many live data keys each root key version wraps."""
    rows = session.execute(
        select(DataKeyRecord.root_version, func.count())
        .where(DataKeyRecord.state != KeyState.DESTROYED)
        .group_by(DataKeyRecord.root_version)
    ).all()
    return {int(v): int(n) for v, n in rows}
