"""Consultations and everything written in them, sealed under the patient's data key.

Plaintext on purpose: ids, the specialty code (the queue needs it), statuses and
timestamps. Everything a patient or practitioner writes is sealed.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, TimestampMixin, str_enum, utcnow
from hippocrate.db.sealed import FREE_TEXT, JSON, TEXT, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class ConsultationStatus(enum.StrEnum):
    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Consultation(IdMixin, TimestampMixin, SealedModel, Base):
    __tablename__ = "consultations"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_RECORD

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    specialty: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[ConsultationStatus] = mapped_column(
        str_enum(ConsultationStatus), default=ConsultationStatus.REQUESTED, index=True
    )
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("practitioners.id"), index=True
    )
    taken_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    subject_sealed: Mapped[bytes | None] = mapped_column("subject", LargeBinary)
    description_sealed: Mapped[bytes | None] = mapped_column("description", LargeBinary)
    questionnaire_sealed: Mapped[bytes | None] = mapped_column("questionnaire", LargeBinary)
    report_sealed: Mapped[bytes | None] = mapped_column("report", LargeBinary)
    prescription_sealed: Mapped[bytes | None] = mapped_column("prescription", LargeBinary)
    acts_sealed: Mapped[bytes | None] = mapped_column("acts", LargeBinary)
    incidents_sealed: Mapped[bytes | None] = mapped_column("incidents", LargeBinary)

    subject = Sealed[str]("subject_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)
    description = Sealed[str]("description_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)
    questionnaire = Sealed[dict[str, Any]](
        "questionnaire_sealed", JSON, category=Category.HEALTH, pad=Padding(1024)
    )
    # The compte rendu, written by the practitioner when closing.
    report = Sealed[str]("report_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)
    prescription = Sealed[str]("prescription_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)
    # Acts performed (telemedicine act codes), and technical incidents, as lists.
    acts = Sealed[list[str]]("acts_sealed", JSON, category=Category.HEALTH, pad=Padding(256))
    incidents = Sealed[list[str]](
        "incidents_sealed", JSON, category=Category.HEALTH, pad=Padding(256)
    )


class Message(IdMixin, SealedModel, Base):
    __tablename__ = "messages"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_MESSAGE

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    author_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    body_sealed: Mapped[bytes | None] = mapped_column("body", LargeBinary)
    body = Sealed[str]("body_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)


class Attachment(IdMixin, SealedModel, Base):
    """A file attached to a message. The body is sealed in the blob store, outside the
    database, bound to ("attachments", "body", id); its name and type are sealed here."""

    __tablename__ = "attachments"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_ATTACHMENT

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), index=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    filename_sealed: Mapped[bytes | None] = mapped_column("filename", LargeBinary)
    media_type_sealed: Mapped[bytes | None] = mapped_column("media_type", LargeBinary)
    filename = Sealed[str]("filename_sealed", TEXT, category=Category.ATTACHMENT, pad=Padding(256))
    media_type = Sealed[str](
        "media_type_sealed", TEXT, category=Category.ATTACHMENT, pad=Padding(64)
    )


class CareRelationship(IdMixin, Base):
    """A practitioner cares for a patient from taking a consultation until ``ends_at``
    (set when the consultation closes or is cancelled, plus the configured period)."""

    __tablename__ = "care_relationships"

    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), unique=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime | None]
