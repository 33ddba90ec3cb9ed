"""Typed errors of the breach domain."""

from __future__ import annotations

from hippocrate.errors import HippocrateError


class BreachError(HippocrateError):
    """Base class of the domain's refusals."""


class InvalidAssessment(BreachError):
    """A severity or decision input is missing, out of range or not justified."""

    status = 422
    title = "Invalid assessment"


class DelayNotExplained(BreachError):
    """A notification sent after the deadline without the reason for the delay
    (Art. 33(1): a notification made after 72 hours is accompanied by the reasons)."""

    status = 422
    title = "Delay not explained"

    def __init__(self) -> None:
        super().__init__("this notification is late: state the reason for the delay (Art. 33(1))")


class InvalidIncident(BreachError):
    status = 422
    title = "Invalid incident"


class IncidentNotFound(BreachError):
    status = 404
    title = "Not found"

    def __init__(self) -> None:
        super().__init__("no incident has this id")


class StaleIncident(BreachError):
    """The change was made on an older version of the incident than the current one."""

    status = 409
    title = "Conflict"

    def __init__(self, current: int) -> None:
        self.current = current
        super().__init__(
            f"the incident changed since you read it (now version {current}): read it again"
        )

    @property
    def extensions(self) -> dict[str, object]:
        return {"current_version": self.current}


class IncidentClosed(BreachError):
    status = 409
    title = "Incident closed"

    def __init__(self) -> None:
        super().__init__("this incident is closed: reopen it, with a note, to change it")


class NotificationOutOfOrder(BreachError):
    status = 409
    title = "Notification out of order"

    def __init__(
        self,
        message: str = "a complementary notification or a withdrawal "
        "follows an initial notification",
    ) -> None:
        super().__init__(message)


class NoticesNotAllowed(BreachError):
    """The decision does not require notices and no reason was given to send them."""

    status = 409
    title = "Notices not required"

    def __init__(self) -> None:
        super().__init__(
            "the assessment does not require telling the people (Art. 34): give the "
            "reason for telling them anyway, or assess the incident first"
        )
