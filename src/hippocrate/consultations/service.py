"""Operations on consultations: opening, the queue, taking, messages and attachments,
closing, cancelling, incidents. Keyword-only arguments; nothing here commits.

Every read starts from a scoped statement of ``access.policy``; every change takes the
consultation as :func:`get_consultation` gave it to the same principal (``get_readable``,
so "not yours" is "not found"; a route fetches it once, in a dependency), then asks the
policy whether this principal may do this to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.principal import Principal
from hippocrate.blobs import BlobStore, put_in_transaction
from hippocrate.config import Settings
from hippocrate.consultations.errors import (
    InvalidTransition,
    InvalidUpload,
    QueueEmpty,
    TooManyAttachments,
)
from hippocrate.consultations.files import CheckedFile, check_file
from hippocrate.consultations.models import (
    Attachment,
    CareRelationship,
    Consultation,
    ConsultationStatus,
    Message,
    day_ceil,
    day_floor,
    month_of,
    size_bucket,
)
from hippocrate.consultations.schemas import CloseInput, ConsultationCreate
from hippocrate.consultations.uploads import UploadedFile
from hippocrate.db.sealed import require_hook, vault_of
from hippocrate.keyring.service import active_key, key_for
from hippocrate.notify.service import send, unsafe_patient_account
from hippocrate.tags import Category, Verb
from hippocrate.vault import FieldContext, peek_key_version

OPEN = (ConsultationStatus.REQUESTED, ConsultationStatus.IN_PROGRESS)
# How often taking retries when another practitioner took the candidate first.
_TAKE_ATTEMPTS = 10


# -- attachment bodies -----------------------------------------------------------------


def body_context(attachment_id: uuid.UUID) -> FieldContext:
    """Where an attachment body lives: it only opens as the body of that attachment."""
    return FieldContext("attachments", "body", attachment_id)


def _note_body(session: Session, attachment: Attachment, verb: Verb) -> None:
    """Tell the audit trail (and through it the guard, which may refuse) of a body read
    or written: bodies do not pass through a sealed attribute. Fails closed like the
    store: a session that records nothing (or checks no read) opens no body."""
    require_hook(session, verb, f"the body of attachment {attachment.id}").note(
        patient=attachment.patient_id,
        subject=Attachment.__audit_subject__,
        verb=verb,
        resource=f"attachment:{attachment.id}",
        category=Category.ATTACHMENT,
    )


def seal_body(*, session: Session, attachment: Attachment, content: bytes) -> bytes:
    _note_body(session, attachment, Verb.WRITE)
    key = active_key(session=session, owner=attachment.patient_id)
    return vault_of(session).seal(key, content, body_context(attachment.id))


def open_body(*, session: Session, attachment: Attachment, sealed: bytes) -> bytes:
    """The plaintext body; ``DecryptionError`` (``KeyDestroyed`` once shredded)."""
    _note_body(session, attachment, Verb.READ)  # before decrypting: the guard may refuse
    key = key_for(session=session, owner=attachment.patient_id, version=peek_key_version(sealed))
    return vault_of(session).open(key, sealed, body_context(attachment.id))


def unsafe_reseal_attachments(session: Session, blobs: BlobStore, owner: uuid.UUID) -> int:
    """Re-seal every attachment body of ``owner`` under their active data key (after a
    data key rotation); each file is replaced atomically. Returns how many changed.

    Unsafe, it skips the access policy: key rotation is maintenance on every body of
    one owner, whoever may read them, and shows nothing to its caller (what it opens it
    seals again). The bodies still open only in an audited session, so each is in the
    trail under the rotation's actor."""
    active = active_key(session=session, owner=owner)
    changed = 0
    for attachment in session.scalars(select(Attachment).where(Attachment.patient_id == owner)):
        sealed = blobs.get(attachment.id)
        if peek_key_version(sealed) == active.version:
            continue
        content = open_body(session=session, attachment=attachment, sealed=sealed)
        blobs.put(attachment.id, seal_body(session=session, attachment=attachment, content=content))
        changed += 1
    return changed


def check_files(*, settings: Settings, files: Sequence[UploadedFile]) -> list[CheckedFile]:
    """Check every file before anything is written: one bad file refuses them all."""
    if len(files) > settings.attachments_per_message:
        raise TooManyAttachments(settings.attachments_per_message)
    return [
        check_file(
            position=position,
            filename=upload.filename,
            declared_type=upload.content_type,
            content=upload.content,
            max_bytes=settings.attachment_max_bytes,
        )
        for position, upload in enumerate(files, start=1)
    ]


def _add_message(
    *,
    session: Session,
    blobs: BlobStore,
    consultation: Consultation,
    author_account_id: uuid.UUID,
    body: str,
    files: Sequence[CheckedFile],
    now: datetime,
    added: list[Attachment] | None = None,
) -> Message:
    # Numbered after the consultation's last message (a column, nothing opened).
    last = session.scalar(
        select(func.max(Message.number)).where(Message.consultation_id == consultation.id)
    )
    message = Message(
        consultation_id=consultation.id,
        patient_id=consultation.patient_id,
        author_account_id=author_account_id,
        number=(last or 0) + 1,
        created_at=month_of(now),
    )
    message.body = body
    message.sent_at = now
    session.add(message)
    session.flush()  # no ORM relationship orders the inserts: the message goes first
    attachments = []
    for position, checked in enumerate(files):
        attachment = Attachment(
            message_id=message.id,
            consultation_id=consultation.id,
            patient_id=consultation.patient_id,
            size=size_bucket(len(checked.content)),
            position=position,
            created_at=month_of(now),
        )
        attachment.filename = checked.filename
        attachment.media_type = checked.media_type
        attachment.exact_size = len(checked.content)
        session.add(attachment)
        attachments.append((attachment, checked.content))
        if added is not None:
            added.append(attachment)
    # Rows first (a database refusal writes no file), then the sealed bodies; a later
    # rollback deletes the files again.
    session.flush()
    for attachment, content in attachments:
        sealed = seal_body(session=session, attachment=attachment, content=content)
        put_in_transaction(session=session, store=blobs, blob_id=attachment.id, data=sealed)
    return message


def add_documents(
    *,
    session: Session,
    blobs: BlobStore,
    consultation: Consultation,
    author_account_id: uuid.UUID,
    body: str,
    files: Sequence[CheckedFile],
    now: datetime,
) -> list[Attachment]:
    """A message carrying documents the platform made for the practitioner (the signed
    report and prescription, ``documents.service.issue``), in a consultation that may
    be closed already: the files are the platform's, not an upload to check. Returns
    the attachments, in the order of ``files``."""
    added: list[Attachment] = []
    _add_message(
        session=session,
        blobs=blobs,
        consultation=consultation,
        author_account_id=author_account_id,
        body=body,
        files=files,
        now=now,
        added=added,
    )
    return added


# -- opening, reading ------------------------------------------------------------------


def open_consultation(
    *,
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    principal: Principal,
    data: ConsultationCreate,
    files: Sequence[UploadedFile] = (),
    now: datetime,
) -> Consultation:
    """A patient asks for advice. Files sent with the request become the first message
    (from the patient, with an empty body)."""
    policy.ensure_may_open_consultation(principal)
    checked = check_files(settings=settings, files=files)
    patient_id = policy.own_patient_id(principal)
    # Numbered after the patient's last consultation (a column, nothing opened).
    last = session.scalar(
        select(func.max(Consultation.number)).where(Consultation.patient_id == patient_id)
    )
    consultation = Consultation(
        patient_id=patient_id,
        specialty=data.specialty,
        status=ConsultationStatus.REQUESTED,
        number=(last or 0) + 1,
        created_at=now,
        updated_at=now,
    )
    # Sealed from the start: the plaintext specialty and time go when it leaves the queue.
    consultation.start_timeline()
    consultation.subject = data.subject
    consultation.description = data.description
    consultation.questionnaire = dict(data.questionnaire)
    consultation.acts = []
    consultation.incidents = []
    session.add(consultation)
    session.flush()
    if checked:
        _add_message(
            session=session,
            blobs=blobs,
            consultation=consultation,
            author_account_id=principal.account_id,
            body="",
            files=checked,
            now=now,
        )
    return consultation


def get_consultation(
    *, session: Session, principal: Principal, consultation_id: uuid.UUID, now: datetime
) -> Consultation:
    return policy.get_readable(
        session,
        policy.readable_consultations(principal, now=now),
        Consultation,
        consultation_id,
        "consultation",
    )


def list_consultations(
    *, principal: Principal, now: datetime, status: ConsultationStatus | None = None
) -> Select[Consultation]:
    """The statement of the principal's consultations, newest first (to paginate).

    No exact date is in plaintext once a consultation leaves the queue, so the order
    is by plaintext that is not a date: a patient's consultations (and an admin's, who
    reads one patient under break-glass) by their number; a practitioner's, who has
    many patients, by month, newest first, then by number."""
    statement = policy.readable_consultations(principal, now=now)
    if status is not None:
        statement = statement.where(Consultation.status == status)
    if principal.is_practitioner:
        return statement.order_by(
            Consultation.created_at.desc(), Consultation.number.desc(), Consultation.id
        )
    return statement.order_by(Consultation.number.desc(), Consultation.id)


# -- the queue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    specialty: str
    position: int
    waiting_since: datetime
    waiting_seconds: int


def queue(
    *, session: Session, principal: Principal, now: datetime, limit: int, offset: int
) -> tuple[list[Waiting], int]:
    """The principal's specialty queue: positions and waiting times, nothing else."""
    specialty = principal.specialty or ""
    statement = policy.queue_entries(principal, specialty)
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = session.execute(statement.limit(limit).offset(offset)).all()
    return [
        Waiting(
            specialty=specialty,
            position=offset + index,
            waiting_since=created_at,
            waiting_seconds=max(0, int((now - created_at).total_seconds())),
        )
        for index, (_, created_at) in enumerate(rows, start=1)
    ], int(total or 0)


def take_next(*, session: Session, principal: Principal, now: datetime) -> Consultation:
    """Take the oldest waiting consultation of the principal's specialty and start the
    care relationship with its patient.

    Safe under concurrency: the status changes only by a conditional UPDATE
    (``WHERE status = 'requested'``) whose row count says who won; on PostgreSQL the
    candidate is also picked with ``FOR UPDATE SKIP LOCKED``, so practitioners taking
    at once pick different rows instead of queueing on one. A loser retries with the
    next candidate.
    """
    specialty = principal.specialty or ""
    candidates = policy.queue_entries(principal, specialty).with_only_columns(Consultation.id)
    on_postgres = session.get_bind().dialect.name == "postgresql"
    patient_id = consultation_id = None
    for _ in range(_TAKE_ATTEMPTS):
        pick = candidates.limit(1)
        if on_postgres:
            pick = pick.with_for_update(skip_locked=True)
        consultation_id = session.scalar(pick)
        if consultation_id is None:
            break
        patient_id = session.execute(
            update(Consultation)
            .where(
                Consultation.id == consultation_id,
                Consultation.status == ConsultationStatus.REQUESTED,
            )
            .values(
                status=ConsultationStatus.IN_PROGRESS,
                practitioner_id=principal.practitioner_id,
            )
            .returning(Consultation.patient_id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if patient_id is not None:
            break
    if patient_id is None or consultation_id is None:
        raise QueueEmpty(specialty)
    assert principal.practitioner_id is not None  # ensured by the policy
    session.add(
        CareRelationship(
            practitioner_id=principal.practitioner_id,
            patient_id=patient_id,
            consultation_id=consultation_id,
            started_at=day_floor(now),
        )
    )
    session.flush()
    consultation = get_consultation(
        session=session, principal=principal, consultation_id=consultation_id, now=now
    )
    # Out of the queue: the specialty and the exact times are sealed from now on.
    consultation.taken_at = now
    consultation.leave_queue()
    return consultation


# -- changes of status -----------------------------------------------------------------


def _end_care(*, session: Session, consultation: Consultation, ends_at: datetime) -> None:
    session.execute(
        update(CareRelationship)
        .where(CareRelationship.consultation_id == consultation.id)
        .values(ends_at=day_ceil(ends_at))
        .execution_options(synchronize_session=False)
    )


def _notify_patient(
    *, session: Session, settings: Settings, consultation: Consultation, now: datetime
) -> None:
    """Tell the patient something waits in the app (the email says nothing more)."""
    # The account of a patient whose consultation the caller already reads.
    account = unsafe_patient_account(session=session, patient_id=consultation.patient_id)
    if account is not None:
        send(session=session, settings=settings, account=account, template="new_message", now=now)


def cancel(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    consultation: Consultation,
    now: datetime,
) -> Consultation:
    """``consultation`` as :func:`get_consultation` gave it to ``principal``."""
    policy.ensure_may_cancel(principal, consultation)
    if consultation.status not in OPEN:
        raise InvalidTransition(
            f"this consultation is {consultation.status.value}: it cannot be cancelled"
        )
    consultation.status = ConsultationStatus.CANCELLED
    consultation.cancelled_at = now
    consultation.leave_queue()
    _end_care(
        session=session,
        consultation=consultation,
        ends_at=now + timedelta(days=settings.care_period_days),
    )
    return consultation


def close(
    *,
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    principal: Principal,
    consultation: Consultation,
    data: CloseInput,
    now: datetime,
) -> Consultation:
    """The practitioner in charge closes with a report (required), acts, and maybe a
    prescription; the care relationship ends ``care_period_days`` later. The signed
    report and prescription PDFs are attached to a message of the practitioner's
    (``documents.service.issue``): a document that cannot be made or signed closes
    nothing. ``consultation`` as :func:`get_consultation` gave it to ``principal``."""
    # Imported here: the documents domain builds on this module (``add_documents``).
    from hippocrate.documents.service import issue

    policy.ensure_may_close(principal, consultation)
    if consultation.status is not ConsultationStatus.IN_PROGRESS:
        raise InvalidTransition(
            f"this consultation is {consultation.status.value}: only one in progress is closed"
        )
    consultation.report = data.report
    consultation.prescription = data.prescription
    consultation.acts = list(data.acts)
    consultation.status = ConsultationStatus.CLOSED
    consultation.closed_at = now
    consultation.leave_queue()
    _end_care(
        session=session,
        consultation=consultation,
        ends_at=now + timedelta(days=settings.care_period_days),
    )
    issue(
        session=session,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        now=now,
    )
    _notify_patient(session=session, settings=settings, consultation=consultation, now=now)
    return consultation


def cancel_for_deletion(
    *, session: Session, consultation_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Cancel the open consultations among ``consultation_ids`` (those of a patient who
    deletes their account, as the policy gave them), opening nothing: their data keys
    are destroyed in the same transaction, so their timelines stay sealed and unread,
    and what plaintext the queue needed (specialty, exact creation time) goes too."""
    rows = session.execute(
        select(Consultation.id, Consultation.created_at).where(
            Consultation.id.in_(consultation_ids), Consultation.status.in_(OPEN)
        )
    ).all()
    for consultation_id, created_at in rows:
        month = month_of(created_at)
        session.execute(
            update(Consultation)
            .where(Consultation.id == consultation_id)
            .values(
                status=ConsultationStatus.CANCELLED,
                specialty="",
                created_at=month,
                updated_at=month,
                legacy_taken_at=None,
            )
            .execution_options(synchronize_session=False)
        )


def encode_incident(at: datetime, description: str) -> str:
    """Incidents are stored as ``<ISO 8601 time> <description>`` in the sealed list."""
    return f"{at.isoformat()} {description}"


def decode_incident(entry: str) -> tuple[datetime, str]:
    at, _, description = entry.partition(" ")
    return datetime.fromisoformat(at), description


def record_incident(
    *,
    session: Session,
    principal: Principal,
    consultation: Consultation,
    description: str,
    now: datetime,
) -> Consultation:
    """A technical incident (lost connection, unreadable file…), kept on the record as
    French telemedicine rules require. ``consultation`` as :func:`get_consultation` gave
    it to ``principal``."""
    policy.ensure_may_record_incident(principal, consultation)
    consultation.incidents = [*(consultation.incidents or []), encode_incident(now, description)]
    return consultation


# -- messages and attachments ----------------------------------------------------------


def post_message(
    *,
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    principal: Principal,
    consultation: Consultation,
    body: str,
    files: Sequence[UploadedFile] = (),
    now: datetime,
) -> Message:
    """``consultation`` as :func:`get_consultation` gave it to ``principal``."""
    policy.ensure_may_post_message(principal, consultation)
    checked = check_files(settings=settings, files=files)
    if not body.strip() and not checked:
        raise InvalidUpload("a message needs text or at least one file")
    message = _add_message(
        session=session,
        blobs=blobs,
        consultation=consultation,
        author_account_id=principal.account_id,
        body=body,
        files=checked,
        now=now,
    )
    if principal.is_practitioner:
        _notify_patient(session=session, settings=settings, consultation=consultation, now=now)
    return message


def messages_statement(
    *, principal: Principal, consultation: Consultation, now: datetime
) -> Select[Message]:
    """The messages of ``consultation`` (as :func:`get_consultation` gave it to
    ``principal``), oldest first."""
    return (
        policy.readable_messages(principal, now=now)
        .where(Message.consultation_id == consultation.id)
        .order_by(Message.number, Message.id)
    )


def get_message(
    *, session: Session, principal: Principal, message_id: uuid.UUID, now: datetime
) -> Message:
    return policy.get_readable(
        session, policy.readable_messages(principal, now=now), Message, message_id, "message"
    )


def attachments_of(
    *, session: Session, principal: Principal, messages: Sequence[Message], now: datetime
) -> dict[uuid.UUID, list[Attachment]]:
    found: dict[uuid.UUID, list[Attachment]] = {m.id: [] for m in messages}
    if not found:
        return found
    rows = session.scalars(
        policy.readable_attachments(principal, now=now)
        .where(Attachment.message_id.in_(list(found)))
        .order_by(Attachment.position, Attachment.id)
    ).all()
    for attachment in rows:
        found[attachment.message_id].append(attachment)
    return found


def read_attachment(
    *,
    session: Session,
    blobs: BlobStore,
    principal: Principal,
    attachment_id: uuid.UUID,
    now: datetime,
) -> tuple[Attachment, bytes]:
    """An attachment the principal may read, and its decrypted body."""
    attachment = policy.get_readable(
        session,
        policy.readable_attachments(principal, now=now),
        Attachment,
        attachment_id,
        "attachment",
    )
    sealed = blobs.get(attachment.id)
    return attachment, open_body(session=session, attachment=attachment, sealed=sealed)
