"""Sealing the health metadata that rows written before revision 0008 hold in plaintext
(``hippocrate keys reseal``, after the values of sealed format 1).

Before 0008 a consultation kept its specialty and the exact instants it was opened,
taken, closed or cancelled in plaintext for life, a message its exact send time and a
file its exact size. Since 0008 new rows keep them sealed (docs/CONSULTATIONS.md, "What
the database copy still says"); this moves those of older rows:

- a consultation out of the queue: specialty and instants into its sealed timeline,
  a month left in plaintext (:meth:`Consultation.leave_queue`); one still waiting keeps
  them, as the queue needs them, until it leaves the queue;
- a message: its exact time into ``sent_at``, a month left;
- a file: its exact size into ``exact_size``, a size bucket and a month left.

Resumable by construction: each pass selects only rows that still hold what it moves
(a plaintext specialty or instant, an empty sealed column), and each batch is one unit of
work whose rows all change or none; killed at any point, a rerun finds what is left.
Rows of shredded patients (data keys destroyed) cannot be sealed by anyone, and nobody
can read what they would hold: their plaintext is coarsened the same way, and nothing
is sealed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from hippocrate.consultations.models import (
    Attachment,
    Consultation,
    ConsultationStatus,
    Message,
    month_of,
    size_bucket,
)
from hippocrate.db.engine import UnitsOfWork
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.vault import UnwrapBudgetExceeded

#: Fault injection for the crash tests: the process kills itself once this many rows
#: are done, inside the batch that reaches it (flushed, not committed).
FAULT_KILL_AFTER = "HIPPOCRATE_FAULT_METADATA_KILL_AFTER"

#: How long to wait before retrying a batch refused by the unwrap budget.
_BUDGET_PAUSE = 5.0


@dataclass(frozen=True)
class MetadataReport:
    #: Rows whose plaintext metadata this run sealed, per table.
    sealed: dict[str, int]
    #: Rows of shredded patients whose plaintext this run coarsened without sealing.
    coarsened: dict[str, int]


def _shredded(owner: Any) -> ColumnElement[bool]:
    """Whether the row's owner (``model.patient_id``) is a shredded patient."""
    found: ColumnElement[bool] = owner.in_(
        select(Patient.id).where(Patient.status == PatientStatus.SHREDDED)
    )
    return found


def _consultations_left() -> ColumnElement[bool]:
    """Out of the queue, and still holding a plaintext specialty or instant."""
    return and_(
        Consultation.status != ConsultationStatus.REQUESTED,
        or_(
            Consultation.specialty != "",
            Consultation.legacy_taken_at.is_not(None),
            Consultation.legacy_closed_at.is_not(None),
            Consultation.legacy_cancelled_at.is_not(None),
        ),
    )


def count_left(*, sessions: UnitsOfWork) -> dict[str, int]:
    """How many rows of each table still hold plaintext metadata to seal (counts of
    plaintext columns: nothing is opened)."""
    left = {
        "consultations": and_(_consultations_left(), ~_shredded(Consultation.patient_id)),
        "messages": and_(Message.sent_at_sealed.is_(None), ~_shredded(Message.patient_id)),
        "attachments": and_(
            Attachment.exact_size_sealed.is_(None), ~_shredded(Attachment.patient_id)
        ),
    }
    models = {"consultations": Consultation, "messages": Message, "attachments": Attachment}
    counts = {}
    with sessions.begin() as session:
        for table, condition in left.items():
            count = session.scalar(select(func.count()).select_from(models[table]).where(condition))
            if count:
                counts[table] = int(count)
    return counts


def _seal_consultations(session: Session, batch_size: int) -> tuple[int, int]:
    ids = session.scalars(
        select(Consultation.id)
        .where(_consultations_left(), ~_shredded(Consultation.patient_id))
        .order_by(Consultation.id)
        .limit(batch_size)
    ).all()
    for consultation in unsafe_rows(session, Consultation, ids):
        consultation.leave_queue()
    return len(ids), 0


def _coarsen_consultations(session: Session, batch_size: int) -> tuple[int, int]:
    rows = session.execute(
        select(Consultation.id, Consultation.created_at)
        .where(_consultations_left(), _shredded(Consultation.patient_id))
        .order_by(Consultation.id)
        .limit(batch_size)
    ).all()
    for consultation_id, created_at in rows:
        month = month_of(created_at)
        session.execute(
            update(Consultation)
            .where(Consultation.id == consultation_id)
            .values(
                specialty="",
                created_at=month,
                updated_at=month,
                legacy_taken_at=None,
                legacy_closed_at=None,
                legacy_cancelled_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    return 0, len(rows)


def _seal_messages(session: Session, batch_size: int) -> tuple[int, int]:
    ids = session.scalars(
        select(Message.id)
        .where(Message.sent_at_sealed.is_(None), ~_shredded(Message.patient_id))
        .order_by(Message.id)
        .limit(batch_size)
    ).all()
    for message in unsafe_rows(session, Message, ids):
        message.sent_at = message.created_at
        message.created_at = month_of(message.created_at)
    return len(ids), 0


def _seal_attachments(session: Session, batch_size: int) -> tuple[int, int]:
    ids = session.scalars(
        select(Attachment.id)
        .where(Attachment.exact_size_sealed.is_(None), ~_shredded(Attachment.patient_id))
        .order_by(Attachment.id)
        .limit(batch_size)
    ).all()
    for attachment in unsafe_rows(session, Attachment, ids):
        attachment.exact_size = attachment.size
        attachment.size = size_bucket(attachment.size)
        attachment.created_at = month_of(attachment.created_at)
    return len(ids), 0


def _coarsen_shredded_messages_and_files(session: Session, batch_size: int) -> tuple[int, int]:
    """Messages and files of shredded patients: a month and a bucket, once. A row is
    done when its time is a month already (a size is made a bucket along with it)."""
    done = 0
    for model in (Message, Attachment):
        rows = session.execute(
            select(model.id, model.created_at).where(
                model.patient_id.in_(
                    select(Patient.id).where(Patient.status == PatientStatus.SHREDDED)
                )
            )
        ).all()
        for row_id, created_at in rows:
            month = month_of(created_at)
            if created_at == month:
                continue
            values: dict[str, Any] = {"created_at": month}
            if model is Attachment:
                size = session.scalar(select(Attachment.size).where(Attachment.id == row_id))
                values["size"] = size_bucket(size or 0)
            session.execute(
                update(model)
                .where(model.id == row_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            done += 1
            if done >= batch_size:
                return 0, done
    return 0, done


def unsafe_rows(session: Session, model: Any, ids: Any) -> list[Any]:
    """The rows of ``model`` with these ids, for the metadata migration only.

    Unsafe, it skips the access policy: sealing the plaintext metadata of older rows is
    maintenance on every patient's rows, whoever may read them, and shows nothing to its
    caller. Whatever it opens or seals goes through the session's recorder, so it is in
    the trail under the migration's actor."""
    if not ids:
        return []
    return list(session.scalars(select(model).where(model.id.in_(list(ids)))).all())


Step = Callable[[Session, int], tuple[int, int]]

_STEPS: tuple[tuple[str, Step], ...] = (
    ("consultations", _seal_consultations),
    ("consultations", _coarsen_consultations),
    ("messages", _seal_messages),
    ("attachments", _seal_attachments),
    ("shredded messages and attachments", _coarsen_shredded_messages_and_files),
)


def unsafe_seal_metadata(
    *,
    sessions: UnitsOfWork,
    batch_size: int = 200,
    progress: Callable[[str, int], None] | None = None,
    pause: Callable[[float], None] = time.sleep,
) -> MetadataReport:
    """Seal the plaintext health metadata of every row written before revision 0008.

    Unsafe, it loads rows of every patient outside the access policy (see
    :func:`unsafe_rows`): ``sessions`` must be units of work acting as the platform for
    key maintenance (``hippocrate.work.Units`` with ``Purpose.KEY_ROTATION``). A batch
    refused by the unwrap budget is retried after a pause; batches committed before
    stay."""
    kill_after = int(os.environ.get(FAULT_KILL_AFTER, "0") or 0)
    sealed: dict[str, int] = {}
    coarsened: dict[str, int] = {}
    total = 0
    for table, step in _STEPS:
        while True:
            try:
                with sessions.begin() as session:
                    done, plain = step(session, batch_size)
                    if kill_after and total + done + plain >= kill_after:
                        session.flush()
                        os.kill(os.getpid(), signal.SIGKILL)
            except UnwrapBudgetExceeded:
                pause(_BUDGET_PAUSE)
                continue
            if not done and not plain:
                break
            total += done + plain
            if done:
                sealed[table] = sealed.get(table, 0) + done
            if plain:
                coarsened[table] = coarsened.get(table, 0) + plain
            if progress is not None:
                progress(table, done + plain)
    return MetadataReport(sealed, coarsened)
