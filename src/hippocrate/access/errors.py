"""Refusals of the access policy."""

from __future__ import annotations

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n, term

#: The kinds of object a ``NotFound`` names, marked for the catalogues.
KINDS = (
    _n("resource"),
    _n("account"),
    _n("approval"),
    _n("patient"),
    _n("consultation"),
    _n("message"),
    _n("attachment"),
    _n("incident"),
    _n("notice"),
)


class AccessError(HippocrateError):
    """Base class; the message is safe to show to the caller."""

    status = 403
    title = _n("Forbidden")


class NotFound(AccessError):
    """The object does not exist *or* the principal may not see it: the two are never
    told apart, so ids cannot be probed."""

    status = 404
    title = _n("Not found")

    def __init__(self, kind: str = "resource", object_id: object | None = None) -> None:
        self.kind = kind
        self.object_id = object_id  # for the audit trail; never shown to the caller
        super().__init__(_n("no such {kind}"), kind=term(kind))


class Forbidden(AccessError):
    """The principal may see the object but not do this to it (e.g. a patient closing
    their own consultation). Only raised once visibility is established."""


class NotAuthenticated(AccessError):
    status = 401
    title = _n("Unauthorized")

    def __init__(self, message: str = _n("authentication required"), /, **params: object) -> None:
        super().__init__(message, **params)

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class SecondFactorRequired(AccessError):
    status = 401
    title = _n("Second factor required")

    def __init__(self) -> None:
        super().__init__(_n("this session must complete the second factor first"))
