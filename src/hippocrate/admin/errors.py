"""Refusals of four-eyes approvals (``HippocrateError``: each says its status)."""

from __future__ import annotations

import uuid

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n, term

#: The outcomes of a decided request (``FourEyesOutcome``), marked for the catalogues.
OUTCOMES = (_n("pending"), _n("approved"), _n("refused"), _n("expired"))


class ApprovalError(HippocrateError):
    status = 409
    title = _n("Conflict")


class ApprovalPending(ApprovalError):
    """The same action on the same account already waits for approval."""

    def __init__(self, request_id: uuid.UUID) -> None:
        self.request_id = request_id
        super().__init__(
            _n(
                "the same request already waits for a second administrator ({request_id}): "
                "approve or refuse it"
            ),
            request_id=request_id,
        )


class ApprovalDecided(ApprovalError):
    """Approved, refused or expired already (or moot): it executes no more."""

    def __init__(self, outcome: str) -> None:
        # An outcome (OUTCOMES) or a marked reason, translated with the message.
        self.outcome = outcome
        super().__init__(_n("this request cannot be decided: {outcome}"), outcome=term(outcome))


class ApprovalExpired(ApprovalError):
    """Past its expiry: recorded as expired (the unit of work commits that)."""

    commit = True

    def __init__(self) -> None:
        super().__init__(_n("this request expired: ask again"))
