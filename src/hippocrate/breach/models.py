"""The incident register (Art. 33(5)): incidents, their timeline, their notifications.

An incident is opened by the guard when it contains a principal, or by a DPO by hand.
Its details follow the superset of Art. 33(3), the CNIL's form and the EDPB's common
template (``breach/schemas.py`` ``IncidentDetails``), kept as one JSON document that
the schema validates on every change. Every change is a row of the timeline (who, when,
what changed, from what to what) and an event of the audit trail.

A notification to the authority is kept exactly as sent (the dossier's JSON and its
SHA-256) with the authority's receipt reference, per phase (initial, complementary,
withdrawal).

What a copy of these tables says: that incidents happened, when, their counts and
severity, and the ids (random UUIDs) of the principals and patients in a scope, as the
audit trail already does. They hold no name, address, NIR or health content of anyone:
the dossier counts patients, the notices that name them are sealed under each
patient's key (``notices``).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, str_enum, utcnow


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class IncidentOrigin(enum.StrEnum):
    GUARD = "guard"  # opened when the guard contained a principal
    DPO = "dpo"  # opened by hand
    DRILL = "drill"  # opened by ``hippocrate drill`` against a copy


class Phase(enum.StrEnum):
    """The phases of a notification to the authority (Art. 33(4): in phases)."""

    INITIAL = "initial"
    COMPLEMENTARY = "complementary"
    WITHDRAWAL = "withdrawal"


class Incident(IdMixin, Base):
    __tablename__ = "incidents"

    #: The reference the DPO and the authority quote (``INC-20251128-3f9a1c``).
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[IncidentStatus] = mapped_column(
        str_enum(IncidentStatus, 16), default=IncidentStatus.OPEN, index=True
    )
    origin: Mapped[IncidentOrigin] = mapped_column(str_enum(IncidentOrigin, 16))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by_role: Mapped[str] = mapped_column(String(24))
    opened_by: Mapped[uuid.UUID | None]
    #: When the controller became aware: the Art. 33 clock starts here.
    awareness_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    #: ``IncidentDetails`` as JSON: every field of the register but the dates above.
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The ENISA assessment (``AssessmentIn``) with its overrides, or none yet.
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Bumped by every change: a change names the version it was made on (409 if stale).
    version: Mapped[int] = mapped_column(Integer, default=1)


class IncidentChange(IdMixin, Base):
    """One line of an incident's timeline."""

    __tablename__ = "incident_changes"
    __table_args__ = (UniqueConstraint("incident_id", "seq"),)

    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor_role: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(32))
    #: ``{field: [before, after]}`` for an amendment; what was done otherwise.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class IncidentNotification(IdMixin, Base):
    """A notification to the authority, exactly as sent."""

    __tablename__ = "incident_notifications"

    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id"), index=True)
    phase: Mapped[Phase] = mapped_column(str_enum(Phase, 16))
    sent_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by_role: Mapped[str] = mapped_column(String(24))
    recorded_by: Mapped[uuid.UUID | None]
    #: The dossier as sent (the EDPB template's sections), and its SHA-256 (hex).
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    receipt_reference: Mapped[str | None] = mapped_column(String(120))
    delay_reason: Mapped[str | None] = mapped_column(Text)


class IncidentScope(IdMixin, Base):
    """A scope computed for an incident, signed, at the chain's head it names."""

    __tablename__ = "incident_scopes"

    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime]
    computed_by_role: Mapped[str] = mapped_column(String(24))
    computed_by: Mapped[uuid.UUID | None]
    head_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    #: The signed scope (``Scope.as_dict``): counts, parameters, patient ids, signature.
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


class NoticeStatus(enum.StrEnum):
    QUEUED = "queued"  # to send (again: ``next_attempt_at``)
    SENDING = "sending"  # claimed by a worker until ``lease_until``
    SENT = "sent"  # the SMTP server (or the outbox) accepted it
    POST = "post"  # no address to write to, or every attempt failed: a letter


class Notice(IdMixin, Base):
    """One patient's Art. 34 notice of one incident: the ledger the job queue works from.

    The queue's tasks only say "look at these notices"; this row says what is to be done,
    so a task lost with a killed worker loses nothing: the sweep finds the notice again
    (queued and due, or claimed and its lease run out). A notice is claimed by one
    conditional update, sent, then marked sent; its email keeps one Message-ID and one
    verification code however many times it is tried (``email_id``).
    """

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("incident_id", "patient_id"),)

    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(index=True)
    #: The scope the notice's content (the categories involved) comes from.
    scope_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incident_scopes.id"))
    status: Mapped[NoticeStatus] = mapped_column(
        str_enum(NoticeStatus, 16), default=NoticeStatus.QUEUED, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    email_id: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime | None]
    #: When the patient saw it in their space (the banner at sign-in).
    seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
