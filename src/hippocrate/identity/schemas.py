"""Request and response shapes of the identity domain.

Passwords are taken exactly as typed (no whitespace stripping: a space is part of a
password) and never appear in a model's ``repr``. Every string is bounded.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from hippocrate.identity import factors, passwords, tokens
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.patients.schemas import PatientCreate
from hippocrate.schemas import Output, StrictInput

Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=1, max_length=passwords.MAX_LENGTH),
    Field(repr=False, description="As typed; at least 12 characters for a new password"),
]
AsTyped = Annotated[
    str, StringConstraints(strip_whitespace=False, min_length=1, max_length=passwords.MAX_LENGTH)
]
LoginEmail = Annotated[str, Field(min_length=1, max_length=320)]
CODE_DESCRIPTION = "A 6-digit code from the authenticator app, or a recovery code"
CodeValue = Annotated[str, StringConstraints(min_length=6, max_length=factors.MAX_CODE_LENGTH)]
Code = Annotated[CodeValue, Field(repr=False, description=CODE_DESCRIPTION)]
LinkToken = Annotated[str, Field(min_length=1, max_length=tokens.MAX_TOKEN_LENGTH, repr=False)]


# -- requests -----------------------------------------------------------------------------


class LoginIn(StrictInput):
    email: LoginEmail
    password: Password


class CodeIn(StrictInput):
    code: Code


class TotpConfirmIn(StrictInput):
    code: Code
    password: AsTyped | None = Field(
        default=None,
        repr=False,
        description="As typed. "
        "Required from a signed-in account; not from a staff member's pending "
        "first-sign-in session, which gave it a moment ago",
    )


class RegistrationIn(PatientCreate, StrictInput):
    """A patient's registration: identity, contact, optional NIR, and a password."""

    password: Password


class VerifyEmailIn(StrictInput):
    token: LinkToken


class ResetRequestIn(StrictInput):
    email: LoginEmail


class ResetCompleteIn(StrictInput):
    token: LinkToken
    password: Password
    code: CodeValue | None = Field(
        default=None,
        repr=False,
        description=CODE_DESCRIPTION + "; required if the account has a second factor",
    )


class PasswordChangeIn(StrictInput):
    current_password: Password
    new_password: Password


class TotpDisableIn(StrictInput):
    password: Password
    code: Code


# -- responses ----------------------------------------------------------------------------


class BearerToken(Output):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_at: datetime
    #: Security notices (Art. 34) waiting unseen in the patient's space: the app shows a
    #: banner at sign-in when there are any (0 for staff).
    unseen_notices: int = 0


class SecondFactorChallenge(Output):
    """The password was right; complete with ``POST /api/v1/auth/mfa`` (bearer: this
    token), or, if ``mfa_setup_required``, set up TOTP first (``POST /api/v1/me/totp``)."""

    mfa_required: Literal[True] = True
    mfa_setup_required: bool
    token: str
    expires_at: datetime


class Accepted(Output):
    detail: str


class TotpSetup(Output):
    secret: str
    otpauth_uri: str


class TotpEnabled(Output):
    """Recovery codes are shown this once. The session that confirmed is replaced by
    this one: use the new token."""

    recovery_codes: list[str]
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_at: datetime


class RecoveryCodes(Output):
    recovery_codes: list[str]


class AccountView(Output):
    """What an account holder sees of their own account."""

    id: uuid.UUID
    role: Role
    status: AccountStatus
    email_verified: bool
    mfa_enabled: bool
    mfa_required: bool
    recovery_codes_left: int
    created_at: datetime
    last_login_at: datetime | None


class AccountMetadata(Output):
    """Account metadata for support and admins: never an email, a name, a NIR or any
    health data, and nothing sealed is opened to build it."""

    id: uuid.UUID
    role: Role
    status: AccountStatus
    email_verified: bool
    mfa_enabled: bool
    locked: bool
    locked_until: datetime | None
    failed_logins: int
    # Locked for wrong second-factor codes, until an admin unlocks (``locked`` too).
    second_factor_locked_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, account: Account, *, now: datetime) -> AccountMetadata:
        locked_until = account.locked_until
        return cls(
            id=account.id,
            role=account.role,
            status=account.status,
            email_verified=account.email_verified_at is not None,
            mfa_enabled=account.totp_enabled,
            locked=(locked_until is not None and locked_until > now)
            or account.mfa_locked_at is not None,
            locked_until=locked_until,
            failed_logins=account.failed_logins or 0,
            second_factor_locked_at=account.mfa_locked_at,
            disabled_reason=account.disabled_reason,
            created_at=account.created_at,
            last_login_at=account.last_login_at,
        )
