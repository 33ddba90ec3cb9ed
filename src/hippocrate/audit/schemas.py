"""Shapes of the audit trail as a patient sees it."""

from __future__ import annotations

from datetime import datetime

from hippocrate.schemas import Output


class AccessEntry(Output):
    """One access to the patient's record: when, who, what kind of data, why."""

    at: datetime
    who: str
    role: str
    action: str
    categories: list[str]
    purpose: str | None
    outcome: str
