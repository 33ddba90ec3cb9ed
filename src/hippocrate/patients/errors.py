"""Typed errors of the patients domain."""

from __future__ import annotations

from hippocrate.access.errors import NotFound
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n, term

#: The fields a ``DuplicatePatient`` names, marked for the catalogues.
FIELDS = (_n("email"), _n("phone"), _n("NIR"))


class PatientError(HippocrateError):
    """Base class; the message is safe to show to the person who made the request."""


class PatientNotFound(PatientError, NotFound):
    """A refusal like every other not-found: recorded in the trail, counted by the
    guard's enumeration rule, and worded like an unknown id."""

    status = 404
    title = _n("Not found")

    def __init__(self, patient_id: object | None = None) -> None:
        NotFound.__init__(self, "patient", patient_id)


class DuplicatePatient(PatientError):
    """Another patient already uses this email, phone or NIR."""

    status = 409
    title = _n("Conflict")

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(_n("this {field} is already registered"), field=term(field))


class InconsistentIdentity(PatientError):
    status = 422
    title = _n("Inconsistent identity")

    def __init__(self, message: str, /, **params: object) -> None:
        super().__init__(message, **params)


class PatientShredded(PatientError):
    status = 410
    title = _n("Erased")

    def __init__(self) -> None:
        super().__init__(_n("this patient's data was erased"))
