"""Request and response shapes of the admin and support routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from hippocrate.identifiers import normalise_email
from hippocrate.identity.schemas import AccountMetadata
from hippocrate.schemas import Output, StrictInput

SETUP_INSTRUCTIONS = (
    "Hand the setup token to the staff member in person or by a channel other than "
    "their email. With it they choose a password (POST /api/v1/auth/password-reset/"
    "complete, within 72 hours, once), then sign in: their first session can only set "
    "up TOTP (POST /api/v1/me/totp, then /api/v1/me/totp/confirm) before anything else."
)

Specialty = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_-]{1,63}$",
        description="A specialty code, e.g. general_practice, dermatology",
    ),
]


class _WithEmail(StrictInput):
    email: Annotated[str, Field(min_length=3, max_length=320)]

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalise_email(value)


class PractitionerCreateIn(_WithEmail):
    given_names: Annotated[str, Field(min_length=1, max_length=200)]
    family_name: Annotated[str, Field(min_length=1, max_length=200)]
    rpps: Annotated[str, Field(pattern=r"^[0-9]{11}$", description="RPPS number, 11 digits")]
    specialty: Specialty


class StaffCreateIn(_WithEmail):
    role: Literal["support", "dpo", "admin"]


class StaffCreated(Output):
    """A staff account created without a password: ``setup_token`` (shown once) lets its
    holder choose one; see ``instructions``."""

    account: AccountMetadata
    practitioner_id: uuid.UUID | None = None
    setup_token: str
    setup_expires_at: datetime
    instructions: str = SETUP_INSTRUCTIONS


class DisableIn(StrictInput):
    reason: Annotated[str, Field(min_length=1, max_length=64)]


class ReleaseIn(StrictInput):
    """Why a contained account may work again (kept in the security log)."""

    reason: Annotated[str, Field(min_length=20, max_length=500)]


class RecoveryIn(StrictInput):
    """What to reset of a staff member's credentials (both, by default)."""

    password: bool = True
    second_factor: bool = True


APPROVAL_INSTRUCTIONS = (
    "This action needs a second administrator: another administrator approves it with "
    "POST /api/v1/admin/approvals/{id}/approve (or refuses it with .../refuse) within "
    "24 hours (GET /api/v1/admin/approvals lists what waits). The one who asked cannot "
    "approve it. A setup token is never shown to an administrator: it is emailed to the "
    "account's own address when the request is approved."
)


class ApprovalRead(Output):
    """A four-eyes request: an administrator's action waiting for, or decided by, a
    second administrator. ``target_id`` is the account acted on (for ``create_admin``,
    the new administrator's account, disabled until approved)."""

    id: uuid.UUID
    action: Literal["release", "recovery", "create_admin"]
    target_id: uuid.UUID
    reset_password: bool
    reset_second_factor: bool
    reason: str | None
    requested_by: uuid.UUID
    created_at: datetime
    expires_at: datetime
    outcome: Literal["pending", "approved", "refused", "expired"]
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    #: Sessions of the account that the executed action ended (a recovery).
    sessions_ended: int = 0
    instructions: str = APPROVAL_INSTRUCTIONS


class SessionsEnded(Output):
    ended: int
