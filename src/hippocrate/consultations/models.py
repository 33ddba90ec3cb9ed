"""Consultations and everything written in them, sealed under the patient's data key.

Everything a patient or practitioner writes is sealed, and so is what a copy of the
database would otherwise link to a pseudonymous patient: a consultation's specialty
and the exact instants of its life (its sealed ``timeline``), when each message was
sent, each file's exact size. Plaintext stays what the queue needs while a
consultation waits (its specialty and since when, exactly), what the access policy
needs (ids, status, who took it, the care relationship's days), and coarse values
(months, size buckets, per-patient and per-consultation sequence numbers) that order
lists without a date. docs/CONSULTATIONS.md ("What the database copy still says")
lists every plaintext column and why it remains.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, str_enum, utcnow
from hippocrate.db.sealed import FREE_TEXT, JSON, TEXT, Codec, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class ConsultationStatus(enum.StrEnum):
    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# -- coarse plaintext ------------------------------------------------------------------


def month_of(at: datetime) -> datetime:
    """The first instant (UTC) of the month of ``at``: what stays in plaintext of a
    consultation's, a message's or a file's time once the exact one is sealed."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def day_floor(at: datetime) -> datetime:
    """Midnight (UTC) at the start of the day of ``at``."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def day_ceil(at: datetime) -> datetime:
    """The first midnight (UTC) at or after ``at``: a care relationship ends there, so
    its row does not give away the instant its consultation closed."""
    floor = day_floor(at)
    return floor if floor == at else floor + timedelta(days=1)


def size_bucket(size: int) -> int:
    """The plaintext size of a file: the smallest power of two that holds it, 1 KiB at
    least. The exact size is sealed (``Attachment.exact_size``)."""
    bucket = 1024
    while bucket < size:
        bucket *= 2
    return bucket


#: A UTC instant, sealed as its ISO 8601 text.
INSTANT: Codec[datetime] = Codec(
    lambda v: v.astimezone(UTC).isoformat().encode("ascii"),
    lambda b: datetime.fromisoformat(b.decode("ascii")),
)

#: The keys of a consultation's sealed timeline (besides "specialty").
_EVENTS = ("created", "taken", "closed", "cancelled")


def _instant(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class Consultation(IdMixin, SealedModel, Base):
    """A consultation. Its specialty and exact creation time are plaintext only while
    it waits in the queue (the queue routes and orders by them); :meth:`leave_queue`
    moves them into the sealed ``timeline`` and leaves a month in plaintext. The
    instants it was taken, closed or cancelled are only ever in the timeline."""

    __tablename__ = "consultations"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_RECORD

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    # Plaintext while waiting (the queue); empty once out of it (then in the timeline).
    # Empty rather than NULL: the column stays NOT NULL, so revision 0008 alters no
    # column (SQLite would copy the table, which its foreign keys refuse).
    specialty: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[ConsultationStatus] = mapped_column(
        str_enum(ConsultationStatus), default=ConsultationStatus.REQUESTED, index=True
    )
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("practitioners.id"), index=True
    )
    # The patient's consultations are numbered 1, 2, 3…: their list is ordered by it,
    # not by a date. Two opened at once may share a number (ties go by id).
    number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Exact while waiting (the queue's order and waiting time); the first instant of
    # its month once out of the queue. ``updated_at`` no longer follows activity: it
    # holds the same coarse value.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Written before revision 0008 only; ``hippocrate keys reseal`` moves them into the
    # timeline and clears them. Nothing writes them any more.
    legacy_taken_at: Mapped[datetime | None] = mapped_column("taken_at")
    legacy_closed_at: Mapped[datetime | None] = mapped_column("closed_at")
    legacy_cancelled_at: Mapped[datetime | None] = mapped_column("cancelled_at")
    # The number of the last message each side has read (``Message.number``): unread
    # flags without a time. The practitioner's is that of the one in charge (reset when
    # a consultation is taken).
    patient_read: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    practitioner_read: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    subject_sealed: Mapped[bytes | None] = mapped_column("subject", LargeBinary)
    description_sealed: Mapped[bytes | None] = mapped_column("description", LargeBinary)
    questionnaire_sealed: Mapped[bytes | None] = mapped_column("questionnaire", LargeBinary)
    report_sealed: Mapped[bytes | None] = mapped_column("report", LargeBinary)
    prescription_sealed: Mapped[bytes | None] = mapped_column("prescription", LargeBinary)
    acts_sealed: Mapped[bytes | None] = mapped_column("acts", LargeBinary)
    incidents_sealed: Mapped[bytes | None] = mapped_column("incidents", LargeBinary)
    timeline_sealed: Mapped[bytes | None] = mapped_column("timeline", LargeBinary)
    handbacks_sealed: Mapped[bytes | None] = mapped_column("handbacks", LargeBinary)

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
    # {"specialty": code, "created"/"taken"/"closed"/"cancelled": ISO 8601 or null}: one
    # value, one bucket (every timeline fits in 256 bytes), opened once per read.
    timeline = Sealed[dict[str, Any]](
        "timeline_sealed", JSON, category=Category.HEALTH, pad=Padding(256)
    )
    # [{"taken", "handed_back": ISO 8601, "practitioner_id", "reason"}]: each time the
    # practitioner in charge handed it back to the queue, and why.
    handbacks = Sealed[list[dict[str, Any]]](
        "handbacks_sealed", JSON, category=Category.HEALTH, pad=FREE_TEXT
    )

    @property
    def waiting(self) -> bool:
        """In the queue, with its plaintext specialty and exact creation time."""
        return self.status is ConsultationStatus.REQUESTED and bool(self.specialty)

    def _event(self, name: str) -> datetime | None:
        return _instant((self.timeline or {}).get(name))

    def _set_event(self, name: str, at: datetime | None) -> None:
        self.timeline = {
            **(self.timeline or {}),
            name: at.astimezone(UTC).isoformat() if at else None,
        }

    @property
    def specialty_code(self) -> str | None:
        """The specialty: plaintext while waiting, else from the timeline (opens it)."""
        if self.specialty:
            return self.specialty
        found = (self.timeline or {}).get("specialty")
        return found if isinstance(found, str) else None

    @property
    def opened_at(self) -> datetime:
        """When the patient opened it, exactly (opens the timeline once out of the queue)."""
        if self.waiting:
            return self.created_at
        return self._event("created") or self.created_at

    @property
    def taken_at(self) -> datetime | None:
        return self._event("taken") or self.legacy_taken_at

    @taken_at.setter
    def taken_at(self, at: datetime | None) -> None:
        self._set_event("taken", at)

    @property
    def closed_at(self) -> datetime | None:
        return self._event("closed") or self.legacy_closed_at

    @closed_at.setter
    def closed_at(self, at: datetime | None) -> None:
        self._set_event("closed", at)

    @property
    def cancelled_at(self) -> datetime | None:
        return self._event("cancelled") or self.legacy_cancelled_at

    @cancelled_at.setter
    def cancelled_at(self, at: datetime | None) -> None:
        self._set_event("cancelled", at)

    def start_timeline(self) -> None:
        """Seal the specialty and the creation time (a new consultation)."""
        self.timeline = {
            "specialty": self.specialty,
            **dict.fromkeys(_EVENTS),
            "created": self.created_at.astimezone(UTC).isoformat(),
        }

    def leave_queue(self) -> None:
        """Move what only the queue needed out of plaintext: the specialty and the exact
        creation time go into the timeline (with any instant a row of before revision
        0008 still holds in plaintext), a month stays. Idempotent."""
        timeline = dict(self.timeline or {})
        created = _instant(timeline.get("created")) or self.created_at
        legacy = {
            "taken": self.legacy_taken_at,
            "closed": self.legacy_closed_at,
            "cancelled": self.legacy_cancelled_at,
        }
        sealed = {
            **timeline,
            "specialty": timeline.get("specialty") or self.specialty,
            "created": created.astimezone(UTC).isoformat(),
            **{
                name: timeline.get(name) or (at.astimezone(UTC).isoformat() if at else None)
                for name, at in legacy.items()
            },
        }
        if sealed != timeline:
            self.timeline = sealed
        self.specialty = ""
        self.created_at = self.updated_at = month_of(created)
        self.legacy_taken_at = self.legacy_closed_at = self.legacy_cancelled_at = None

    def return_to_queue(self) -> None:
        """Back in the queue (handed back): the specialty and the exact creation time
        come back to plaintext from the timeline, since the queue routes and orders by
        them while it waits. It keeps its original place (the patient has waited since
        then); the take's instant is cleared (the hand-back keeps it). Opens the
        timeline."""
        timeline = dict(self.timeline or {})
        created = _instant(timeline.get("created")) or self.created_at
        self.timeline = {**timeline, "taken": None}
        self.specialty = str(timeline.get("specialty") or "")
        self.created_at = self.updated_at = created


class Message(IdMixin, SealedModel, Base):
    __tablename__ = "messages"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_MESSAGE

    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    author_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    # The messages of a consultation are numbered 1, 2, 3…, the order they are read in
    # (two sent at once may share a number: ties go by id).
    number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The first instant of the month it was sent in; the exact instant is ``sent_at``.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    body_sealed: Mapped[bytes | None] = mapped_column("body", LargeBinary)
    sent_at_sealed: Mapped[bytes | None] = mapped_column("sent_at", LargeBinary)
    body = Sealed[str]("body_sealed", TEXT, category=Category.HEALTH, pad=FREE_TEXT)
    sent_at = Sealed[datetime]("sent_at_sealed", INSTANT, category=Category.HEALTH, pad=Padding(64))


class Attachment(IdMixin, SealedModel, Base):
    """A file attached to a message. The body is sealed in the blob store, outside the
    database, bound to ("attachments", "body", id); its name, type and exact size are
    sealed here."""

    __tablename__ = "attachments"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.CONSULTATION_ATTACHMENT

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), index=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    # The bucket of its size (:func:`size_bucket`); the exact size is ``exact_size``.
    size: Mapped[int] = mapped_column(Integer)
    # Its place among the files of its message (0, 1, 2…).
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The first instant of the month it was sent in (its message has the exact one).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    filename_sealed: Mapped[bytes | None] = mapped_column("filename", LargeBinary)
    media_type_sealed: Mapped[bytes | None] = mapped_column("media_type", LargeBinary)
    exact_size_sealed: Mapped[bytes | None] = mapped_column("exact_size", LargeBinary)
    filename = Sealed[str]("filename_sealed", TEXT, category=Category.ATTACHMENT, pad=Padding(256))
    media_type = Sealed[str](
        "media_type_sealed", TEXT, category=Category.ATTACHMENT, pad=Padding(64)
    )
    exact_size = Sealed[int](
        "exact_size_sealed", JSON, category=Category.ATTACHMENT, pad=Padding(16)
    )


class CareRelationship(IdMixin, Base):
    """A practitioner cares for a patient from taking a consultation until ``ends_at``
    (set when the consultation closes or is cancelled, plus the configured period).

    Both are whole days (UTC): ``started_at`` the midnight before the take, ``ends_at``
    the midnight after the period ends (:func:`day_ceil`), so the row says on which day
    care started and ended, not the instant a consultation was taken or closed."""

    __tablename__ = "care_relationships"

    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("practitioners.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    # One per take: a consultation handed back and taken again has one for each
    # practitioner who took it (the ended ones stay: who read the record).
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime | None]
