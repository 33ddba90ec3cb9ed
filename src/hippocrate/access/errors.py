"""Refusals of the access policy."""

from __future__ import annotations

from hippocrate.errors import HippocrateError


class AccessError(HippocrateError):
    """Base class; the message is safe to show to the caller."""

    status = 403
    title = "Forbidden"


class NotFound(AccessError):
    """The object does not exist *or* the principal may not see it: the two are never
    told apart, so ids cannot be probed."""

    status = 404
    title = "Not found"

    def __init__(self, kind: str = "resource", object_id: object | None = None) -> None:
        self.kind = kind
        self.object_id = object_id  # for the audit trail; never shown to the caller
        super().__init__(f"no such {kind}")


class Forbidden(AccessError):
    """The principal may see the object but not do this to it (e.g. a patient closing
    their own consultation). Only raised once visibility is established."""


class NotAuthenticated(AccessError):
    status = 401
    title = "Unauthorized"

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message)

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class SecondFactorRequired(AccessError):
    status = 401
    title = "Second factor required"

    def __init__(self) -> None:
        super().__init__("this session must complete the second factor first")
