"""Typed errors of the patients domain."""

from __future__ import annotations

from hippocrate.access.errors import NotFound
from hippocrate.errors import HippocrateError


class PatientError(HippocrateError):
    """Base class; the message is safe to show to the person who made the request."""


class PatientNotFound(PatientError, NotFound):
    """A refusal like every other not-found: recorded in the trail, counted by the
    guard's enumeration rule, and worded like an unknown id."""

    status = 404
    title = "Not found"

    def __init__(self, patient_id: object | None = None) -> None:
        NotFound.__init__(self, "patient", patient_id)


class DuplicatePatient(PatientError):
    """Another patient already uses this email, phone or NIR."""

    status = 409
    title = "Conflict"

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"this {field} is already registered")


class InconsistentIdentity(PatientError):
    status = 422
    title = "Inconsistent identity"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class PatientShredded(PatientError):
    status = 410
    title = "Erased"

    def __init__(self) -> None:
        super().__init__("this patient's data was erased")
