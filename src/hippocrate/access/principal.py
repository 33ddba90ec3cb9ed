"""Who is asking: the principal behind a request or a CLI command."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hippocrate.identity.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated account, as the access policy sees it."""

    account_id: uuid.UUID
    role: Role
    session_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    practitioner_id: uuid.UUID | None = None
    specialty: str | None = None
    #: A CLI operator's name (role ``operator``: a principal without an account).
    operator: str | None = None

    @property
    def is_patient(self) -> bool:
        return self.role is Role.PATIENT

    @property
    def is_practitioner(self) -> bool:
        return self.role is Role.PRACTITIONER


#: Operators are principals without an account: their id is derived from their name.
OPERATOR_NAMESPACE = uuid.UUID("5b0d6a52-7f3e-4c8e-9a51-0f3f0c1e7a11")


def operator_id(name: str) -> uuid.UUID:
    return uuid.uuid5(OPERATOR_NAMESPACE, name)
