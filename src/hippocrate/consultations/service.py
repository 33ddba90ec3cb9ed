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
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.errors import NotFound
from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import recorder_of
from hippocrate.blobs import BlobStore, put_in_transaction
from hippocrate.config import Settings
from hippocrate.consultations import entries
from hippocrate.consultations.errors import (
    InvalidQueueEntry,
    InvalidTransition,
    InvalidUpload,
    NoLongerWaiting,
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
from hippocrate.i18n import _n, term
from hippocrate.identity.models import Account, AccountStatus, Practitioner
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.keyring.service import active_key, key_for, loaded_with_row
from hippocrate.notify.service import send, unsafe_patient_account
from hippocrate.tags import Category, Tag, Verb
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
        attachments.append(attachment)
        if added is not None:
            added.append(attachment)
        # The sealed body first, then the rows: writing and syncing a file is the
        # slowest step, and on SQLite the first row written takes the database's write
        # lock until the commit. A refusal of the rows, or any later rollback, deletes
        # the files again.
        sealed = seal_body(session=session, attachment=attachment, content=checked.content)
        put_in_transaction(session=session, store=blobs, blob_id=attachment.id, data=sealed)
    session.add(message)
    session.flush()  # no ORM relationship orders the inserts: the message goes first
    session.add_all(attachments)
    session.flush()
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
    """The consultation through the policy (``NotFound`` if absent or hidden), with its
    patient's active data-key record in the same query: what the request then seals
    or opens of that patient needs no query of its own for the key."""
    found = session.execute(
        policy.readable_consultations(principal, now=now)
        .where(Consultation.id == consultation_id)
        .add_columns(DataKeyRecord)
        .outerjoin(
            DataKeyRecord,
            and_(
                DataKeyRecord.owner_id == Consultation.patient_id,
                DataKeyRecord.state == KeyState.ACTIVE,
            ),
        )
    ).first()
    if found is None:
        raise NotFound("consultation", consultation_id)
    consultation: Consultation = found[0]
    record: DataKeyRecord | None = found[1]
    if record is not None:
        loaded_with_row(session=session, record=record)
    return consultation


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
    entry: str
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
    key = entries.entry_key(session)
    return [
        Waiting(
            entry=entries.entry_id(key, specialty, consultation_id),
            specialty=specialty,
            position=offset + index,
            waiting_since=created_at,
            waiting_seconds=max(0, int((now - created_at).total_seconds())),
        )
        for index, (consultation_id, created_at) in enumerate(rows, start=1)
    ], int(total or 0)


def _claim(
    *, session: Session, principal: Principal, consultation_id: uuid.UUID
) -> uuid.UUID | None:
    """Make ``consultation_id`` the principal's if it still waits in their queue: one
    conditional UPDATE (``WHERE status = 'requested'``), whose returned row says who
    won when several practitioners take it at once. The patient's id, or None."""
    patient_id: uuid.UUID | None = session.execute(
        update(Consultation)
        .where(
            Consultation.id == consultation_id,
            Consultation.status == ConsultationStatus.REQUESTED,
            Consultation.specialty == (principal.specialty or ""),
            Consultation.specialty != "",
        )
        .values(
            status=ConsultationStatus.IN_PROGRESS,
            practitioner_id=principal.practitioner_id,
            practitioner_read=0,
        )
        .returning(Consultation.patient_id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return patient_id


def _start_care(
    *,
    session: Session,
    settings: Settings | None,
    principal: Principal,
    consultation_id: uuid.UUID,
    patient_id: uuid.UUID,
    now: datetime,
) -> Consultation:
    """After a won claim: the care relationship, the sealed take, the patient told."""
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
    # The claim's UPDATE bypassed the identity map: read the new status and owner.
    session.refresh(consultation, ["status", "practitioner_id", "practitioner_read"])
    # Out of the queue: the specialty and the exact times are sealed from now on.
    consultation.taken_at = now
    consultation.leave_queue()
    if settings is not None:
        _notify_patient(
            session=session,
            settings=settings,
            consultation=consultation,
            template="consultation_taken",
            now=now,
        )
    return consultation


def take_next(
    *, session: Session, principal: Principal, now: datetime, settings: Settings | None
) -> Consultation:
    """Take the oldest waiting consultation of the principal's specialty and start the
    care relationship with its patient; with ``settings`` (the API), the patient gets a
    ``consultation_taken`` email. ``settings=None`` must be said (a simulation or a
    benchmark: nobody is told), so no caller forgets the patient's email by omission.

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
        patient_id = _claim(session=session, principal=principal, consultation_id=consultation_id)
        if patient_id is not None:
            break
    if patient_id is None or consultation_id is None:
        raise QueueEmpty(specialty)
    return _start_care(
        session=session,
        settings=settings,
        principal=principal,
        consultation_id=consultation_id,
        patient_id=patient_id,
        now=now,
    )


#: How many waiting ids of the queue are read at a time to find an entry.
_ENTRY_BATCH = 500


def take_entry(
    *, session: Session, settings: Settings, principal: Principal, entry: str, now: datetime
) -> Consultation:
    """Take the consultation of a queue entry (``GET /queue`` gave its opaque id),
    if it still waits in the principal's queue; ``NoLongerWaiting`` (409) otherwise.

    The entry is found among the waiting ids of the principal's queue, oldest first
    (ids only: nothing of a patient is opened to look); the take is the conditional
    UPDATE of :func:`take_next`, so of two practitioners taking one entry at once,
    exactly one wins and the other gets the 409."""
    specialty = principal.specialty or ""
    candidates = policy.queue_entries(principal, specialty).with_only_columns(Consultation.id)
    digest = entries.parse(entry)
    if digest is None:
        raise InvalidQueueEntry()
    key = entries.entry_key(session)
    found: uuid.UUID | None = None
    offset = 0
    while found is None:
        batch = session.scalars(candidates.limit(_ENTRY_BATCH).offset(offset)).all()
        found = next((cid for cid in batch if entries.matches(key, digest, specialty, cid)), None)
        if len(batch) < _ENTRY_BATCH:
            break
        offset += _ENTRY_BATCH
    patient_id = (
        None
        if found is None
        else _claim(session=session, principal=principal, consultation_id=found)
    )
    if found is None or patient_id is None:
        raise NoLongerWaiting()
    return _start_care(
        session=session,
        settings=settings,
        principal=principal,
        consultation_id=found,
        patient_id=patient_id,
        now=now,
    )


# -- changes of status -----------------------------------------------------------------


def _end_care(*, session: Session, consultation: Consultation, ends_at: datetime) -> None:
    """End the consultation's running care relationship (not one a hand-back ended)."""
    session.execute(
        update(CareRelationship)
        .where(
            CareRelationship.consultation_id == consultation.id,
            CareRelationship.ends_at.is_(None),
        )
        .values(ends_at=ends_at)
        .execution_options(synchronize_session=False)
    )


def _notify_patient(
    *,
    session: Session,
    settings: Settings,
    consultation: Consultation,
    template: str,
    now: datetime,
) -> None:
    """Tell the patient something happened in the app (the email says nothing more)."""
    # The account of a patient whose consultation the caller already reads.
    account = unsafe_patient_account(session=session, patient_id=consultation.patient_id)
    if account is not None:
        send(session=session, settings=settings, account=account, template=template, now=now)


def unsafe_practitioner_account(
    *, session: Session, practitioner_id: uuid.UUID | None
) -> Account | None:
    """The active account of the practitioner in charge of a consultation, to write to:
    unsafe, it skips the access policy. Only for telling them that the patient replied
    in a consultation they hold; the patient who replied never sees the address, and
    the email says only that something waits in the app."""
    if practitioner_id is None:
        return None
    return session.scalars(
        select(Account)
        .join(Practitioner, Practitioner.account_id == Account.id)
        .where(Practitioner.id == practitioner_id, Account.status == AccountStatus.ACTIVE)
    ).first()


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
            _n("this consultation is {status}: it cannot be cancelled"),
            status=term(consultation.status.value),
        )
    consultation.status = ConsultationStatus.CANCELLED
    consultation.cancelled_at = now
    consultation.leave_queue()
    _end_care(
        session=session,
        consultation=consultation,
        ends_at=day_ceil(now + timedelta(days=settings.care_period_days)),
    )
    _notify_patient(
        session=session,
        settings=settings,
        consultation=consultation,
        template="consultation_cancelled",
        now=now,
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
            _n("this consultation is {status}: only one in progress is closed"),
            status=term(consultation.status.value),
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
        ends_at=day_ceil(now + timedelta(days=settings.care_period_days)),
    )
    issue(
        session=session,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        now=now,
    )
    # One email for the report and the prescription, whatever closing attached.
    _notify_patient(
        session=session,
        settings=settings,
        consultation=consultation,
        template="report_ready",
        now=now,
    )
    return consultation


def hand_back(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    consultation: Consultation,
    reason: str,
    now: datetime,
) -> Consultation:
    """The practitioner in charge hands an in-progress consultation back to the queue
    of its specialty, with a reason (sealed under the patient's key, in the trail as
    ``consultation:record:handed-back``). Their care relationship ends now (whole
    days: the midnight that began today, so they no longer read it); the consultation
    waits again at its original place (its exact creation time) and its specialty is
    plaintext again, as for every waiting consultation. The patient is told.

    The status changes by a conditional UPDATE, so a hand-back that races the
    patient's cancelling (or a second hand-back) changes nothing and answers 409.
    ``consultation`` as :func:`get_consultation` gave it to ``principal``."""
    policy.ensure_may_hand_back(principal, consultation)
    if consultation.status is not ConsultationStatus.IN_PROGRESS:
        raise InvalidTransition(
            _n("this consultation is {status}: only one in progress is handed back"),
            status=term(consultation.status.value),
        )
    taken = consultation.taken_at
    changed = session.execute(
        update(Consultation)
        .where(
            Consultation.id == consultation.id,
            Consultation.status == ConsultationStatus.IN_PROGRESS,
            Consultation.practitioner_id == principal.practitioner_id,
        )
        .values(status=ConsultationStatus.REQUESTED, practitioner_id=None, practitioner_read=0)
        .returning(Consultation.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if changed is None:
        raise InvalidTransition(_n("this consultation is no longer in progress: not handed back"))
    session.refresh(consultation, ["status", "practitioner_id", "practitioner_read"])
    consultation.handbacks = [
        *(consultation.handbacks or []),
        {
            "taken": taken.astimezone(UTC).isoformat() if taken else None,
            "handed_back": now.astimezone(UTC).isoformat(),
            "practitioner_id": str(principal.practitioner_id),
            "reason": reason,
        },
    ]
    consultation.return_to_queue()
    session.execute(
        update(CareRelationship)
        .where(
            CareRelationship.consultation_id == consultation.id,
            CareRelationship.practitioner_id == principal.practitioner_id,
            CareRelationship.ends_at.is_(None),
        )
        .values(ends_at=day_floor(now))
        .execution_options(synchronize_session=False)
    )
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(
            Tag.CONSULTATION_RECORD_HANDED_BACK,
            patient=consultation.patient_id,
            resources=(f"{Consultation.__audit_subject__.noun}:{consultation.id}",),
            categories=(Category.HEALTH,),
            now=now,
        )
    # No template of its own yet: "a message waits in a consultation" says enough.
    _notify_patient(
        session=session,
        settings=settings,
        consultation=consultation,
        template="new_message",
        now=now,
    )
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
        raise InvalidUpload(_n("a message needs text or at least one file"))
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
        _notify_patient(
            session=session,
            settings=settings,
            consultation=consultation,
            template="new_message",
            now=now,
        )
    elif consultation.status is ConsultationStatus.IN_PROGRESS:
        # The patient replied: the practitioner in charge is told (nothing more).
        account = unsafe_practitioner_account(
            session=session, practitioner_id=consultation.practitioner_id
        )
        if account is not None:
            send(
                session=session,
                settings=settings,
                account=account,
                template="patient_replied",
                now=now,
            )
    return message


# -- unread flags ----------------------------------------------------------------------


def _read_column(principal: Principal, consultation: Consultation) -> str | None:
    """Which side of ``consultation`` the principal reads as: ``patient_read`` for its
    patient, ``practitioner_read`` for the practitioner in charge, None for anyone else
    (an admin under break-glass marks nothing read)."""
    if principal.is_patient and consultation.patient_id == principal.patient_id:
        return "patient_read"
    if (
        principal.is_practitioner
        and consultation.practitioner_id is not None
        and consultation.practitioner_id == principal.practitioner_id
    ):
        return "practitioner_read"
    return None


def unread_counts(
    *,
    session: Session,
    principal: Principal,
    consultations: Sequence[Consultation],
    now: datetime,
) -> dict[uuid.UUID, int | None]:
    """Per consultation, how many messages the other side wrote after the principal's
    last read (numbers only: nothing sealed is opened); None where the principal reads
    as neither side. "The other side": every message not written by the principal's
    own account (for a practitioner who took a handed-back consultation, the previous
    practitioner's messages are unread too)."""
    counts: dict[uuid.UUID, int | None] = {}
    sides: dict[str, list[uuid.UUID]] = {}
    for consultation in consultations:
        column = _read_column(principal, consultation)
        counts[consultation.id] = None if column is None else 0
        if column is not None:
            sides.setdefault(column, []).append(consultation.id)
    for column, ids in sides.items():
        position = getattr(Consultation, column)
        rows = session.execute(
            policy.readable_messages(principal, now=now)
            .with_only_columns(Message.consultation_id, func.count())
            .join(Consultation, Consultation.id == Message.consultation_id)
            .where(
                Message.consultation_id.in_(ids),
                Message.author_account_id != principal.account_id,
                Message.number > position,
            )
            .group_by(Message.consultation_id)
        ).all()
        for consultation_id, count in rows:
            counts[consultation_id] = int(count)
    return counts


def mark_read(
    *,
    session: Session,
    principal: Principal,
    consultation: Consultation,
    messages: Sequence[Message],
) -> None:
    """The principal has been shown ``messages``: their side's read position moves up
    to the highest number among them (never back)."""
    column = _read_column(principal, consultation)
    if column is None or not messages:
        return
    highest = max(message.number for message in messages)
    if highest > int(getattr(consultation, column) or 0):
        setattr(consultation, column, highest)


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
    consultation_id: uuid.UUID | None = None,
) -> tuple[Attachment, bytes]:
    """An attachment the principal may read, and its decrypted body. With
    ``consultation_id`` (a page's path names one), an attachment of another consultation
    is not found, before anything of it is opened or recorded as read."""
    attachment = policy.get_readable(
        session,
        policy.readable_attachments(principal, now=now),
        Attachment,
        attachment_id,
        "attachment",
    )
    if consultation_id is not None and attachment.consultation_id != consultation_id:
        raise NotFound("attachment", attachment_id)
    sealed = blobs.get(attachment.id)
    return attachment, open_body(session=session, attachment=attachment, sealed=sealed)
