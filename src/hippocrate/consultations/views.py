"""Consultations, messages and attachments opened into the shapes shown to an allowed
reader, and the patient's export. Callers have fetched the objects through the access
policy; nothing here queries patient data on its own."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.principal import Principal
from hippocrate.blobs import BlobStore
from hippocrate.consultations import service
from hippocrate.consultations.models import Attachment, Consultation, Message
from hippocrate.consultations.schemas import (
    QUESTIONS,
    AnswerRead,
    AttachmentRead,
    ConsultationRead,
    ConsultationSummary,
    Incident,
    MessageRead,
    PatientBrief,
    PractitionerIdentity,
    answer_label,
    question_label,
)
from hippocrate.i18n import DEFAULT
from hippocrate.identity.models import Practitioner
from hippocrate.patients.models import Patient


def unsafe_practitioner_of(
    session: Session, practitioner_id: uuid.UUID | None
) -> Practitioner | None:
    """The practitioner in charge of a consultation: unsafe, it skips the access policy.
    Only for the consultation its caller already got from the policy, whose reader is
    told who takes care of it (``policy.readable_practitioners`` holds the same rule
    for a principal)."""
    return None if practitioner_id is None else session.get(Practitioner, practitioner_id)


def practitioner_identity(practitioner: Practitioner | None) -> PractitionerIdentity | None:
    if practitioner is None:
        return None
    return PractitionerIdentity(
        id=practitioner.id,
        given_names=practitioner.given_names or "",
        family_name=practitioner.family_name or "",
        rpps=practitioner.rpps or "",
        specialty=practitioner.specialty,
    )


def summary(
    consultation: Consultation,
    *,
    with_subject: bool = True,
    specialty: str | None = None,
    unread: int | None = None,
) -> ConsultationSummary:
    """A consultation in a list. ``with_subject`` false opens nothing sealed (a
    practitioner's list, so that browsing it reads no patient): only plaintext is shown,
    the specialty and waiting time of one still waiting, else ``specialty`` (the
    practitioner's own, the queue they took it from) and no date."""
    if not with_subject:
        return ConsultationSummary(
            id=consultation.id,
            specialty=consultation.specialty or specialty,
            status=consultation.status,
            subject=None,
            created_at=consultation.created_at if consultation.waiting else None,
            taken_at=None,
            closed_at=None,
            cancelled_at=None,
            unread=unread,
        )
    return ConsultationSummary(
        id=consultation.id,
        specialty=consultation.specialty_code,
        status=consultation.status,
        subject=consultation.subject or "",
        created_at=consultation.opened_at,
        taken_at=consultation.taken_at,
        closed_at=consultation.closed_at,
        cancelled_at=consultation.cancelled_at,
        unread=unread,
    )


def age_on(birth_date: date | None, today: date) -> int | None:
    """Age in whole years on ``today``."""
    if birth_date is None:
        return None
    before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
    return today.year - birth_date.year - int(before_birthday)


def patient_brief(
    session: Session, reader: Principal, consultation: Consultation, now: datetime
) -> PatientBrief | None:
    """The patient's names and age, for the practitioner in charge of ``consultation``
    only: the record is fetched through the policy (a practitioner reads it while in
    care) and its sealed names and birth date are opened, an audited read that the
    guard counts like any other read of that patient. None for every other reader."""
    if not reader.is_practitioner or consultation.practitioner_id != reader.practitioner_id:
        return None
    patient = session.scalars(
        policy.readable_patients(reader, now=now).where(Patient.id == consultation.patient_id)
    ).first()
    if patient is None:
        return None
    return PatientBrief(
        given_names=patient.given_names or "",
        family_name=patient.family_name or "",
        age=age_on(patient.birth_date, now.date()),
    )


def answers_read(questionnaire: dict[str, Any], language: str = DEFAULT) -> list[AnswerRead]:
    """The answers, in the catalogue's order, with the questions' and choices' labels
    in ``language``."""
    return [
        AnswerRead(
            code=q.code,
            question=question_label(q, language),
            answer=str(questionnaire[q.code]),
            answer_label=answer_label(q.code, str(questionnaire[q.code]), language),
        )
        for q in QUESTIONS
        if q.code in questionnaire
    ]


def consultation_read(
    session: Session,
    consultation: Consultation,
    *,
    reader: Principal | None = None,
    now: datetime | None = None,
    language: str = DEFAULT,
) -> ConsultationRead:
    """``consultation`` for ``reader`` (its unread count, and for the practitioner in
    charge the patient's names and age); without a reader (the export), neither. The
    questionnaire's labels are in ``language`` (the export's in the default, French)."""
    incidents = [service.decode_incident(entry) for entry in consultation.incidents or []]
    questionnaire = consultation.questionnaire or {}
    unread = None
    patient = None
    if reader is not None and now is not None:
        unread = service.unread_counts(
            session=session, principal=reader, consultations=[consultation], now=now
        )[consultation.id]
        patient = patient_brief(session, reader, consultation, now)
    return ConsultationRead(
        **summary(consultation).model_dump(exclude={"unread"}),
        unread=unread,
        patient_id=consultation.patient_id,
        patient=patient,
        description=consultation.description or "",
        questionnaire=questionnaire,
        answers=answers_read(questionnaire, language),
        practitioner=practitioner_identity(
            unsafe_practitioner_of(session, consultation.practitioner_id)
        ),
        report=consultation.report,
        prescription=consultation.prescription,
        acts=consultation.acts or [],
        incidents=[Incident(recorded_at=at, description=text) for at, text in incidents],
    )


def attachment_read(attachment: Attachment, sent_at: datetime) -> AttachmentRead:
    """``sent_at``: when its message was sent (the file's own time is only a month)."""
    return AttachmentRead(
        id=attachment.id,
        filename=attachment.filename or "",
        media_type=attachment.media_type or "application/octet-stream",
        size=attachment.exact_size if attachment.exact_size is not None else attachment.size,
        created_at=sent_at,
    )


def _practitioner_account(
    session: Session, principal: Principal, consultation: Consultation
) -> uuid.UUID | None:
    """The account of the practitioner in charge, who wrote the practitioner's messages:
    the reader's own when they are that practitioner (no query), else looked up."""
    if consultation.practitioner_id is None:
        return None
    if principal.is_practitioner and principal.practitioner_id == consultation.practitioner_id:
        return principal.account_id
    found: uuid.UUID | None = session.scalar(
        select(Practitioner.account_id).where(Practitioner.id == consultation.practitioner_id)
    )
    return found


def messages_read(
    session: Session,
    principal: Principal,
    consultation: Consultation,
    messages: Sequence[Message],
    now: datetime,
) -> list[MessageRead]:
    """Messages of ``consultation`` with their attachments (names and types opened)."""
    attachments = service.attachments_of(
        session=session, principal=principal, messages=messages, now=now
    )
    practitioner_account = _practitioner_account(session, principal, consultation)
    return [
        MessageRead(
            id=message.id,
            consultation_id=message.consultation_id,
            author="practitioner"
            if message.author_account_id == practitioner_account
            else "patient",
            created_at=sent_at,
            body=message.body or "",
            attachments=[attachment_read(a, sent_at) for a in attachments[message.id]],
        )
        for message, sent_at in ((m, sent_time(m)) for m in messages)
    ]


def sent_time(message: Message) -> datetime:
    """When ``message`` was sent: sealed (opens it), or in plaintext on a row written
    before revision 0008 that ``hippocrate keys reseal`` has not reached yet."""
    return message.sent_at or message.created_at


def export_consultations(
    *, session: Session, blobs: BlobStore, principal: Principal, now: datetime
) -> list[dict[str, Any]]:
    """Every consultation the principal reads, with its messages and their attachments
    (bodies in base64), oldest first: the consultations part of a patient's export."""
    consultations = session.scalars(
        policy.readable_consultations(principal, now=now).order_by(
            Consultation.number, Consultation.id
        )
    ).all()
    exported = []
    for consultation in consultations:
        messages = session.scalars(
            policy.readable_messages(principal, now=now)
            .where(Message.consultation_id == consultation.id)
            .order_by(Message.number, Message.id)
        ).all()
        shaped_messages = []
        for shaped in messages_read(session, principal, consultation, messages, now):
            entry = shaped.model_dump(mode="json")
            for attachment in entry["attachments"]:
                _, content = service.read_attachment(
                    session=session,
                    blobs=blobs,
                    principal=principal,
                    attachment_id=uuid.UUID(attachment["id"]),
                    now=now,
                )
                attachment["content_base64"] = base64.b64encode(content).decode("ascii")
            shaped_messages.append(entry)
        record = consultation_read(session, consultation).model_dump(mode="json")
        record["messages"] = shaped_messages
        exported.append(record)
    return exported
