"""Typed errors of the breach domain."""

from __future__ import annotations

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n


class BreachError(HippocrateError):
    """Base class of the domain's refusals."""


class InvalidAssessment(BreachError):
    """A severity or decision input is missing, out of range or not justified."""

    status = 422
    title = _n("Invalid assessment")


class DelayNotExplained(BreachError):
    """A notification sent after the deadline without the reason for the delay
    (Art. 33(1): a notification made after 72 hours is accompanied by the reasons)."""

    status = 422
    title = _n("Delay not explained")

    def __init__(self) -> None:
        super().__init__(
            _n("this notification is late: state the reason for the delay (Art. 33(1))")
        )


class InvalidIncident(BreachError):
    status = 422
    title = _n("Invalid incident")


class IncidentNotFound(BreachError):
    status = 404
    title = _n("Not found")

    def __init__(self) -> None:
        super().__init__(_n("no incident has this id"))


class StaleIncident(BreachError):
    """The change was made on an older version of the incident than the current one."""

    status = 409
    title = _n("Conflict")

    def __init__(self, current: int) -> None:
        self.current = current
        super().__init__(
            _n("the incident changed since you read it (now version {version}): read it again"),
            version=current,
        )

    @property
    def extensions(self) -> dict[str, object]:
        return {"current_version": self.current}


class IncidentClosed(BreachError):
    status = 409
    title = _n("Incident closed")

    def __init__(self) -> None:
        super().__init__(_n("this incident is closed: reopen it, with a note, to change it"))


class NotificationOutOfOrder(BreachError):
    status = 409
    title = _n("Notification out of order")

    def __init__(
        self,
        message: str = _n(
            "a complementary notification or a withdrawal follows an initial notification"
        ),
    ) -> None:
        super().__init__(message)


class NoticesNotAllowed(BreachError):
    """The decision does not require notices and no reason was given to send them."""

    status = 409
    title = _n("Notices not required")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "the assessment does not require telling the people (Art. 34): give the "
                "reason for telling them anyway, or assess the incident first"
            )
        )


class NothingToApprove(BreachError):
    status = 409
    title = _n("Nothing to approve")

    def __init__(self) -> None:
        super().__init__(_n("no request of notices waits for approval on this incident"))


class SameApprover(BreachError):
    """Four eyes: whoever asked for the notices does not approve them."""

    status = 403
    title = _n("Forbidden")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "you asked for these notices: another DPO, or an operator with "
                "'hippocrate breach approve-notices', approves them"
            )
        )
