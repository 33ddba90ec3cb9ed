"""Shapes of the notify API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import Field

from hippocrate.notify.check import MAX_TEXT, Kind
from hippocrate.notify.models import OutboundEmail
from hippocrate.schemas import Output, StrictInput

Status = Literal["pending", "sent", "failed"]


class EmailRead(Output):
    """An email the platform sent to the caller: what it was about, never its text."""

    id: uuid.UUID
    template: str
    created_at: datetime
    status: Status
    sent_at: datetime | None
    failed_at: datetime | None
    verification_code: str

    @classmethod
    def of(cls, record: OutboundEmail) -> EmailRead:
        status: Status = "sent" if record.sent_at else "failed" if record.failed_at else "pending"
        return cls(
            id=record.id,
            template=record.template,
            created_at=record.created_at,
            status=status,
            sent_at=record.sent_at,
            failed_at=record.failed_at,
            verification_code=record.verification_code or "",
        )


class CodeCheck(StrictInput):
    code: str = Field(min_length=1, max_length=64, description="The code printed in the email")


class CodeCheckResult(Output):
    """Whether an email with that code was sent to the caller, and which one."""

    found: bool
    email: EmailRead | None = None


# -- the public check of a received message ---------------------------------------------


class MessageCheck(StrictInput):
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="The verification code, or the whole text of the message received",
    )


class MessageCheckRead(Output):
    """Whether Hippocrate sent a message carrying the code; the same fields whatever the
    answer, and nothing of the recipient (``notify/check.py``)."""

    sent_by_hippocrate: bool
    sent_on: date | None = Field(description="The day it was sent (UTC), if it was")
    kind: Kind | None = Field(description="What it was about, in generic words, if sent")
    verdict: str
    warnings: list[str] = Field(description="What in the text says it may not be genuine")
    never_contains: list[str] = Field(description="What a genuine message never holds")
    how_to_be_sure: str
