"""Typed errors of the consultations domain; messages are safe to show the caller and
never repeat what a patient or practitioner wrote."""

from __future__ import annotations


class ConsultationError(Exception):
    """Base class of the domain's refusals."""


class InvalidTransition(ConsultationError):
    """The consultation's status does not allow this step (e.g. closing it twice)."""


class QueueEmpty(ConsultationError):
    def __init__(self, specialty: str) -> None:
        self.specialty = specialty
        super().__init__(f"no consultation is waiting in the {specialty} queue")


class InvalidUpload(ConsultationError):
    """The request body is not a well-formed upload (multipart or JSON)."""


class AttachmentRejected(ConsultationError):
    """A file is not what it claims to be, or not an accepted kind of file."""

    def __init__(self, position: int, reason: str) -> None:
        # The position (1-based, in the order sent), not the name: a file name is
        # patient data and error messages may end up in logs.
        self.position = position
        self.reason = reason
        super().__init__(f"file {position} refused: {reason}")


class AttachmentTooLarge(ConsultationError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"a file is larger than the limit of {limit} bytes")


class TooManyAttachments(ConsultationError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"at most {limit} files may be attached to one message")
