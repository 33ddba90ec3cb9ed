"""Request and response shapes of the admin and support routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator
from stdnum import luhn

from hippocrate.consultations.schemas import SPECIALTIES
from hippocrate.errors import InvalidField
from hippocrate.i18n import _n
from hippocrate.identifiers import normalise_email
from hippocrate.schemas import Output, StrictInput

RPPS_RULE = _n(
    "rpps: an RPPS number is 11 digits whose last one is a Luhn check digit of the first ten"
)


def _specialty(value: str) -> str:
    if value not in SPECIALTIES:
        raise InvalidField(
            _n(
                "specialty: not a specialty of the catalogue (GET /api/v1/catalogue); "
                "one of {specialties}"
            ),
            specialties=", ".join(SPECIALTIES),
        )
    return value


def _rpps(value: str) -> str:
    if not (len(value) == 11 and value.isascii() and value.isdigit() and luhn.is_valid(value)):
        raise InvalidField(RPPS_RULE)
    return value


Specialty = Annotated[
    str,
    Field(max_length=64, description="A specialty code of the catalogue, e.g. general-practice"),
    AfterValidator(_specialty),
]
Rpps = Annotated[
    str,
    Field(max_length=11, description="RPPS number: 11 digits, the last a Luhn check digit"),
    AfterValidator(_rpps),
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
    rpps: Rpps
    specialty: Specialty


class StaffCreateIn(_WithEmail):
    role: Literal["support", "dpo", "admin"]


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
    "account's own address when the request is approved (a new staff account stays "
    "disabled until then, and is deleted if refused or expired)."
)


class ApprovalRead(Output):
    """A four-eyes request: an administrator's action waiting for, or decided by, a
    second administrator. ``target_id`` is the account acted on (for ``create_staff``,
    the new staff account, disabled until approved; ``role`` says which role it gets,
    and ``specialty`` a new practitioner's specialty)."""

    id: uuid.UUID
    action: Literal["release", "recovery", "create_staff", "create_admin"]
    target_id: uuid.UUID
    role: Literal["practitioner", "support", "dpo", "admin"] | None = None
    specialty: str | None = None
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
