"""The notification clock: from awareness to the deadline of the Art. 33 notification.

The GDPR gives 72 hours from the moment the controller became aware of the breach
(Art. 33(1)); a notification made later carries the reasons for the delay. The length
of the window is configuration (``HIPPOCRATE_BREACH_DEADLINE_HOURS``): the Digital
Omnibus proposal would make it 96 hours. Pure functions of their arguments: the time
is always passed in, so the clock reads the same in a test, the API and the dossier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from hippocrate.breach.errors import DelayNotExplained, InvalidAssessment
from hippocrate.i18n import _n

DEFAULT_DEADLINE_HOURS = 72


class ClockState(StrEnum):
    RUNNING = "running"  # before the deadline, not yet notified
    OVERDUE = "overdue"  # past the deadline, not yet notified
    NOTIFIED = "notified"  # notified within the deadline
    NOTIFIED_LATE = "notified late"  # notified after it, with the reason


@dataclass(frozen=True)
class Clock:
    """Where the clock of one incident stands at ``now``."""

    awareness: datetime
    deadline: datetime
    state: ClockState
    remaining: timedelta  # negative once overdue; the margin left when notified

    def as_dict(self) -> dict[str, object]:
        return {
            "awareness": self.awareness.isoformat(),
            "deadline": self.deadline.isoformat(),
            "state": self.state.value,
            "remaining_seconds": int(self.remaining.total_seconds()),
        }


def deadline_of(awareness: datetime, hours: int = DEFAULT_DEADLINE_HOURS) -> datetime:
    if awareness.tzinfo is None:
        raise InvalidAssessment(_n("the time of awareness must say its time zone"))
    if hours <= 0:
        raise InvalidAssessment(_n("the notification deadline is a positive number of hours"))
    return awareness + timedelta(hours=hours)


def clock_at(
    awareness: datetime,
    now: datetime,
    *,
    notified: datetime | None = None,
    hours: int = DEFAULT_DEADLINE_HOURS,
) -> Clock:
    """The clock at ``now``, or as it stopped when the initial notification went."""
    deadline = deadline_of(awareness, hours)
    if notified is not None:
        state = ClockState.NOTIFIED if notified <= deadline else ClockState.NOTIFIED_LATE
        return Clock(awareness, deadline, state, deadline - notified)
    state = ClockState.RUNNING if now <= deadline else ClockState.OVERDUE
    return Clock(awareness, deadline, state, deadline - now)


def check_delay_reason(
    awareness: datetime,
    notified: datetime,
    reason: str | None,
    *,
    hours: int = DEFAULT_DEADLINE_HOURS,
) -> None:
    """Refuse a late notification that does not say why it is late."""
    if notified > deadline_of(awareness, hours) and not (reason and reason.strip()):
        raise DelayNotExplained()
