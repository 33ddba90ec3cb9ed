"""Typed errors of the consultations domain; messages are safe to show the caller and
never repeat what a patient or practitioner wrote."""

from __future__ import annotations

from hippocrate.errors import HippocrateError
from hippocrate.i18n import Message, _n

#: The statuses of a consultation (``ConsultationStatus``) as messages name them,
#: marked for the catalogues.
STATUSES = (_n("requested"), _n("in_progress"), _n("closed"), _n("cancelled"))


class ConsultationError(HippocrateError):
    """Base class of the domain's refusals."""


class InvalidTransition(ConsultationError):
    """The consultation's status does not allow this step (e.g. closing it twice)."""

    status = 409
    title = _n("Conflict")


class QueueEmpty(ConsultationError):
    status = 409
    title = _n("Queue empty")

    def __init__(self, specialty: str) -> None:
        self.specialty = specialty
        super().__init__(
            _n("no consultation is waiting in the {specialty} queue"), specialty=specialty
        )


class NoLongerWaiting(ConsultationError):
    """A queue entry that names no consultation waiting in the caller's queue now."""

    status = 409
    title = _n("No longer waiting")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "no consultation of your queue waits under this entry any more (taken, "
                "cancelled, or never in your queue): list the queue again"
            )
        )


class InvalidQueueEntry(ConsultationError):
    status = 422
    title = _n("Invalid queue entry")

    def __init__(self) -> None:
        super().__init__(_n("this is not a queue entry id (take one from GET /queue)"))


class InvalidUpload(ConsultationError):
    """The request body is not a well-formed upload (multipart or JSON)."""

    status = 422
    title = _n("Invalid request")


class AttachmentRejected(ConsultationError):
    """A file is not what it claims to be, or not an accepted kind of file."""

    status = 422
    title = _n("Attachment refused")

    def __init__(self, position: int, reason: str, /, **params: object) -> None:
        # The position (1-based, in the order sent), not the name: a file name is
        # patient data and error messages may end up in logs. ``reason`` is a marked
        # template of its own, with ``params``: it is translated with the message.
        self.position = position
        self.reason = reason if isinstance(reason, Message) else Message(reason, **params)
        super().__init__(
            _n("file {position} refused: {reason}"), position=position, reason=self.reason
        )


class AttachmentTooLarge(ConsultationError):
    status = 413
    title = _n("Attachment too large")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(_n("a file is larger than the limit of {limit} bytes"), limit=limit)


class TooManyAttachments(ConsultationError):
    status = 422
    title = _n("Too many attachments")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(_n("at most {limit} files may be attached to one message"), limit=limit)
