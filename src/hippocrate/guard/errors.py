"""The guard's refusals."""

from __future__ import annotations

from hippocrate.access.errors import AccessError
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n


class Contained(AccessError):
    """The principal was contained: locked out, sessions ended, requests refused."""

    status = 403
    title = _n("Account locked")

    def __init__(self, reason: str, *, new: bool = False, settled: bool = False) -> None:
        self.reason = reason
        self.new = new  # True for the access that triggered the containment
        # True when the state already made it hold for every process (a containment
        # decided outside a unit of work): completing it must not settle it again.
        self.settled = settled
        super().__init__(
            _n(
                "this account has been locked for your protection after unusual activity; "
                "contact the administrators"
            )
        )


class NotContained(HippocrateError):
    """Release was asked for an account the guard did not contain."""

    status = 409
    title = _n("Conflict")

    def __init__(self) -> None:
        super().__init__(_n("the guard did not contain this account"))
