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
