"""Accounts, sessions and single-use tokens.

Secrets and contact data of an account are sealed under its owner's data key: the
patient's for a patient account, the account's own for staff. The password hash is
sealed too, so a copy of the database gives nothing to crack offline.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, TimestampMixin, str_enum, utcnow
from hippocrate.db.sealed import JSON, TEXT, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class Role(enum.StrEnum):
    PATIENT = "patient"
    PRACTITIONER = "practitioner"
    SUPPORT = "support"
    DPO = "dpo"
    ADMIN = "admin"
    #: A person running the command line; never an account's role (no route creates
    #: one), only a principal's.
    OPERATOR = "operator"

    @property
    def is_staff(self) -> bool:
        return self is not Role.PATIENT


class AccountStatus(enum.StrEnum):
    PENDING = "pending"  # registered, email not verified yet
    ACTIVE = "active"
    DISABLED = "disabled"  # by an admin, or contained by the guard
    DELETED = "deleted"  # the patient deleted their account (data shredded)


class Account(IdMixin, TimestampMixin, SealedModel, Base):
    __tablename__ = "accounts"
    __sealed_owner__ = "owner_id"
    __audit_subject__ = Subject.ACCOUNT_PROFILE
    __owner_is_patient__ = False

    role: Mapped[Role] = mapped_column(str_enum(Role), index=True)
    status: Mapped[AccountStatus] = mapped_column(
        str_enum(AccountStatus), default=AccountStatus.PENDING
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("patients.id", ondelete="RESTRICT"), unique=True
    )

    email_sealed: Mapped[bytes | None] = mapped_column("email", LargeBinary)
    email_index: Mapped[int | None] = mapped_column(Integer, index=True)
    password_sealed: Mapped[bytes | None] = mapped_column("password_hash", LargeBinary)
    totp_sealed: Mapped[bytes | None] = mapped_column("totp_secret", LargeBinary)
    recovery_sealed: Mapped[bytes | None] = mapped_column("recovery_codes", LargeBinary)

    email = Sealed[str](
        "email_sealed",
        TEXT,
        blind_index="email_index",
        index_field="email",
        category=Category.CONTACT,
        pad=Padding(128),
    )
    password_hash = Sealed[str](
        "password_sealed", TEXT, category=Category.CREDENTIALS, pad=Padding(128)
    )
    totp_secret = Sealed[str]("totp_sealed", TEXT, category=Category.CREDENTIALS, pad=Padding(64))
    # SHA-256 digests (hex) of the unused recovery codes; a code is 80 random bits.
    recovery_codes = Sealed[list[str]](
        "recovery_sealed", JSON, category=Category.CREDENTIALS, pad=Padding(1024)
    )

    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    email_verified_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # Wrong second-factor codes since the last right one (a right password does not
    # reset it), and when reaching the limit locked the account until an admin lifts it.
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mfa_locked_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(64))

    def audit_patient_id(self) -> uuid.UUID | None:
        return self.patient_id


class Practitioner(IdMixin, TimestampMixin, SealedModel, Base):
    """A practitioner's professional identity; specialty stays plaintext (queues)."""

    __tablename__ = "practitioners"
    __sealed_owner__ = "owner_id"
    __audit_subject__ = Subject.PRACTITIONER_PROFILE
    __owner_is_patient__ = False

    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    specialty: Mapped[str] = mapped_column(String(64), index=True)

    rpps_sealed: Mapped[bytes | None] = mapped_column("rpps", LargeBinary)
    rpps_index: Mapped[int | None] = mapped_column(Integer, index=True)
    given_names_sealed: Mapped[bytes | None] = mapped_column("given_names", LargeBinary)
    family_name_sealed: Mapped[bytes | None] = mapped_column("family_name", LargeBinary)

    rpps = Sealed[str](
        "rpps_sealed",
        TEXT,
        blind_index="rpps_index",
        index_field="rpps",
        category=Category.IDENTITY,
        pad=Padding(32),
    )
    given_names = Sealed[str](
        "given_names_sealed", TEXT, category=Category.IDENTITY, pad=Padding(64)
    )
    family_name = Sealed[str](
        "family_name_sealed", TEXT, category=Category.IDENTITY, pad=Padding(64)
    )


class AuthSession(IdMixin, Base):
    """A signed-in session. Only a SHA-256 digest of its 256-bit token is stored."""

    __tablename__ = "auth_sessions"

    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    mfa_passed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    idle_expires_at: Mapped[datetime]
    absolute_expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))


class TokenPurpose(enum.StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose name, not a secret


class AccountToken(IdMixin, Base):
    """A single-use token sent by email (verification, password reset)."""

    __tablename__ = "account_tokens"

    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Throttle(Base):
    """Failure counters for sign-in, per account and per client address.

    ``key`` is a keyed digest (never the address itself): ``acct:<blind index>`` or
    ``addr:<blind index>``.
    """

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[datetime | None]


__all__ = [
    "Account",
    "AccountStatus",
    "AccountToken",
    "AuthSession",
    "Practitioner",
    "Role",
    "Throttle",
    "TokenPurpose",
]
