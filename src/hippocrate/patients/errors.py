"""Typed errors of the patients domain."""

from __future__ import annotations


class PatientError(Exception):
    """Base class; the message is safe to show to the person who made the request."""


class PatientNotFound(PatientError):
    def __init__(self) -> None:
        super().__init__("no such patient")


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
