"""A record of every email the platform sends.

The verification code printed in the email is sealed under the recipient's owner key:
someone holding a copy of the database cannot forge a genuine-looking message.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, utcnow
from hippocrate.db.sealed import TEXT, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class OutboundEmail(IdMixin, SealedModel, Base):
    __tablename__ = "outbound_emails"
    __sealed_owner__ = "owner_id"
    __audit_subject__ = Subject.ACCOUNT_NOTIFICATION
    __owner_is_patient__ = False

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    template: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    code_sealed: Mapped[bytes | None] = mapped_column("verification_code", LargeBinary)
    verification_code = Sealed[str](
        "code_sealed", TEXT, category=Category.NOTIFICATION, pad=Padding(16)
    )
