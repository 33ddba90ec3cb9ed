"""Typed errors of the patients domain."""

from __future__ import annotations

from hippocrate.access.errors import NotFound


class PatientError(Exception):
    """Base class; the message is safe to show to the person who made the request."""


class PatientNotFound(PatientError, NotFound):
    """A refusal like every other not-found: recorded in the trail, counted by the
    guard's enumeration rule, and worded like an unknown id."""

    def __init__(self, patient_id: object | None = None) -> None:
        NotFound.__init__(self, "patient", patient_id)


class DuplicatePatient(PatientError):
    """Another patient already uses this email, phone or NIR."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"this {field} is already registered")


class InconsistentIdentity(PatientError):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class PatientShredded(PatientError):
    def __init__(self) -> None:
        super().__init__("this patient's data was erased")
