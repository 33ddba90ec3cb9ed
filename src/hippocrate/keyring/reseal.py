"""Re-sealing values of sealed format 1 in format 2 (``hippocrate keys reseal``).

Format 1 encrypted plaintexts unpadded, so the length of a stored value gave away the
length of a name, an email or a phone number; format 2 pads them to the buckets each
field declares (docs/CRYPTO.md). Sealing has written format 2 since; this migration
re-seals what was stored before, under the owner's active data key.

Resumable by construction: it only ever selects rows that still hold a format 1 value
(the first byte of a sealed column is the format), and each batch is one unit of work
whose values all change or none. Killed at any point, a rerun finds what is left; every
value opens meanwhile, since opening accepts both formats. Values whose data key is
destroyed (shredded patients) cannot be opened by anyone: they are counted, left as
they are, and skipped by the rest of the run.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select

from hippocrate.db.engine import UnitsOfWork
from hippocrate.db.sealed import SealedModel
from hippocrate.keyring.rotation import sealed_models
from hippocrate.vault import FORMAT_V1, KeyDestroyed, UnwrapBudgetExceeded, peek_format

#: Fault injection for the crash tests: the process kills itself after this many
#: values re-sealed (inside a batch, before it commits).
FAULT_KILL_AFTER = "HIPPOCRATE_FAULT_RESEAL_KILL_AFTER"

_V1 = bytes([FORMAT_V1])
#: How long to wait before retrying a batch refused by the unwrap budget.
_BUDGET_PAUSE = 5.0


@dataclass(frozen=True)
class ResealReport:
    #: Values re-sealed in format 2 by this run.
    resealed: int
    #: Rows they were in.
    rows: int
    #: Format 1 values left as they are: their data key is destroyed.
    unopenable: int


@dataclass(frozen=True)
class Progress:
    table: str
    resealed: int
    rows: int


def _holds_v1(model: type[SealedModel]) -> ColumnElement[bool]:
    columns = [getattr(model, f.column_attr) for f in model.__sealed_fields__.values()]
    return or_(*(func.substr(column, 1, 1) == _V1 for column in columns))


def count_v1(*, sessions: UnitsOfWork) -> dict[str, int]:
    """How many rows of each table still hold a format 1 value (no value is opened)."""
    counts = {}
    with sessions.begin() as session:
        for model in sealed_models():
            count = session.scalar(select(func.count()).select_from(model).where(_holds_v1(model)))
            if count:
                counts[model.__table__.name] = int(count)  # type: ignore[attr-defined]
    return counts


def unsafe_reseal_v1(
    *,
    sessions: UnitsOfWork,
    batch_size: int = 200,
    progress: Callable[[Progress], None] | None = None,
    pause: Callable[[float], None] = time.sleep,
) -> ResealReport:
    """Re-seal every format 1 value of every sealed table in format 2.

    Unsafe: it loads rows of every patient, outside the access policy, because a key
    maintenance job has no principal to scope them to. ``sessions`` must be units of
    work acting as the platform for key rotation (``hippocrate.work.Units`` with
    ``Purpose.KEY_ROTATION``): every value opened and sealed again is in the audit
    trail, and nothing is shown. A batch refused by the unwrap budget is retried
    after a pause; progress committed before stays."""
    kill_after = int(os.environ.get(FAULT_KILL_AFTER, "0") or 0)
    resealed = rows = unopenable = 0
    for model in sealed_models():
        table = model.__table__.name  # type: ignore[attr-defined]
        fields = model.__sealed_fields__
        after: uuid.UUID | None = None  # rows before it were done or are unopenable
        while True:
            try:
                with sessions.begin() as session:
                    query = select(model).where(_holds_v1(model))
                    if after is not None:
                        query = query.where(model.id > after)  # type: ignore[attr-defined]
                    batch = session.scalars(
                        query.order_by(model.id).limit(batch_size)  # type: ignore[attr-defined]
                    ).all()
                    done = skipped = 0
                    for row in batch:
                        for name, field in fields.items():
                            blob = getattr(row, field.column_attr)
                            if blob is None or peek_format(blob) != FORMAT_V1:
                                continue
                            try:
                                value = getattr(row, name)
                            except KeyDestroyed:
                                skipped += 1
                                continue
                            setattr(row, name, value)  # sealed again, in format 2, at flush
                            done += 1
                            if kill_after and resealed + done >= kill_after:
                                session.flush()
                                os.kill(os.getpid(), signal.SIGKILL)
            except UnwrapBudgetExceeded:
                pause(_BUDGET_PAUSE)
                continue
            if not batch:
                break
            after = batch[-1].id  # type: ignore[attr-defined]
            resealed += done
            unopenable += skipped
            rows += len(batch)
            if progress is not None:
                progress(Progress(table, resealed, rows))
    return ResealReport(resealed, rows, unopenable)
