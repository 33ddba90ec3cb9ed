"""Four-eyes requests: an administrator's action that a second one must approve.

Releasing a contained account, recovering a staff account and creating any staff
account (practitioner, support, dpo, administrator) are not done by one administrator
alone: the request is recorded here, and only another administrator (or a CLI
operator) executes it by approving it, once.

Everything is plaintext on purpose: ids, the action, the outcome and dates say what
the audit trail says already. The reason is an administrator's own text about an
account (like ``accounts.disabled_reason``), never a patient's data; the new account
of a ``create_staff`` request is created disabled, its email (and a practitioner's
RPPS number and names) sealed like every account's.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, str_enum, utcnow


class FourEyesAction(enum.StrEnum):
    RELEASE = "release"  # release a principal the guard contained
    RECOVERY = "recovery"  # reset a staff member's password and/or second factor
    CREATE_STAFF = "create_staff"  # activate a new staff account (any staff role)
    #: Asked before every staff creation needed approval: executed as ``create_staff``.
    CREATE_ADMIN = "create_admin"


#: The actions that activate a new account (the account's role says which).
CREATIONS = frozenset({FourEyesAction.CREATE_STAFF, FourEyesAction.CREATE_ADMIN})


class FourEyesOutcome(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    EXPIRED = "expired"


class FourEyesRequest(IdMixin, Base):
    __tablename__ = "four_eyes_requests"

    action: Mapped[FourEyesAction] = mapped_column(str_enum(FourEyesAction, 16))
    #: The account acted on (for ``create_staff``, the new staff account, disabled
    #: until approved), or a contained CLI operator's id (no account).
    target_id: Mapped[uuid.UUID] = mapped_column(index=True)
    #: What a recovery resets.
    reset_password: Mapped[bool] = mapped_column(Boolean, default=False)
    reset_second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[uuid.UUID] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    outcome: Mapped[FourEyesOutcome] = mapped_column(
        str_enum(FourEyesOutcome, 16), default=FourEyesOutcome.PENDING, index=True
    )
    #: The administrator's account id, or a CLI operator's id.
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
