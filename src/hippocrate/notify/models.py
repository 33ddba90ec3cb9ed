"""A record of every email the platform sends.

The verification code printed in the email is sealed under the recipient's owner key:
someone holding a copy of the database cannot forge a genuine-looking message. Beside
it, ``code_digest`` is a keyed digest of the normalised code (HMAC-SHA256 under a key
the key provider derives from its index key, ``notify/check.py``): the public check
finds a code's message with one indexed lookup and opens nothing, and a copy of the
database without the provider cannot test a code against it. Null for messages recorded
before migration 0015 (a migration holds no key): those are unknown to the public check.
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
    code_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    verification_code = Sealed[str](
        "code_sealed", TEXT, category=Category.NOTIFICATION, pad=Padding(16)
    )
