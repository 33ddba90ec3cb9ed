"""Refusals of four-eyes approvals (``HippocrateError``: each says its status)."""

from __future__ import annotations

import uuid

from hippocrate.errors import HippocrateError


class ApprovalError(HippocrateError):
    status = 409
    title = "Conflict"


class ApprovalPending(ApprovalError):
    """The same action on the same account already waits for approval."""

    def __init__(self, request_id: uuid.UUID) -> None:
        self.request_id = request_id
        super().__init__(
            f"the same request already waits for a second administrator ({request_id}): "
            "approve or refuse it"
        )


class ApprovalDecided(ApprovalError):
    """Approved, refused or expired already (or moot): it executes no more."""

    def __init__(self, outcome: str) -> None:
        super().__init__(f"this request cannot be decided: {outcome}")


class ApprovalExpired(ApprovalError):
    """Past its expiry: recorded as expired (the unit of work commits that)."""

    commit = True

    def __init__(self) -> None:
        super().__init__("this request expired: ask again")
