"""Break-glass grants: an administrator's (or a CLI operator's) time-limited, reasoned
access to one patient."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, utcnow
from hippocrate.db.sealed import TEXT, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class BreakGlassGrant(IdMixin, SealedModel, Base):
    """The reason is sealed under the patient's key: the patient reads it later."""

    __tablename__ = "break_glass_grants"
    __sealed_owner__ = "patient_id"
    __audit_subject__ = Subject.PATIENT_BREAK_GLASS

    #: The administrator who opened it, or ``operator``: a CLI operator's name.
    admin_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id"), index=True
    )
    operator: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    reason_sealed: Mapped[bytes | None] = mapped_column("reason", LargeBinary)
    reason = Sealed[str]("reason_sealed", TEXT, category=Category.ACCESS, pad=Padding(256))
