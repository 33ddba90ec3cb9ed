"""Shapes of the audit trail as a patient sees it."""

from __future__ import annotations

from datetime import datetime

from hippocrate.schemas import Output


class AccessEntry(Output):
    """One access to the patient's record: when, who, what kind of data, why.

    Repeated accesses (the same actor, action, purpose and outcome, one soon after the
    other) are one entry: ``count`` of them, the first at ``at``, the last at ``until``
    (``until`` equals ``at`` for a single one)."""

    at: datetime
    who: str
    role: str
    action: str
    categories: list[str]
    purpose: str | None
    outcome: str
    count: int = 1
    until: datetime
