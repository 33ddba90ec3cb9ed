"""The base of every refusal a caller can cause, low in the import graph.

Each domain's errors derive from :class:`HippocrateError` and say, as class attributes,
the HTTP status and title they answer; ``api/problems.py`` has one handler for the base
class and so needs no list of every domain's errors (Polar's ``PolarError`` is the
model). A domain never imports the web to say how it is answered: this module imports
nothing of Hippocrate, nor of the web.

An error whose counters must survive the refusal (a wrong password, a wrong code, a
lock) sets ``commit = True``: the owner of the unit of work commits what the service
recorded before the error, then lets the error through to be answered.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HippocrateError(Exception):
    """A refusal the caller caused; ``str(exc)`` is safe to show them.

    Class attributes:
        status: the HTTP status of the answer (a 4xx for anything a caller can cause;
            a 5xx only for data that is unavailable, never for a bug).
        title: the short, fixed title of the problem (RFC 9457).
        commit: whether the unit of work commits, rather than rolls back, when this
            error ends it (its counters must survive the refusal).
    """

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    commit: ClassVar[bool] = False

    @property
    def detail(self) -> str:
        """The problem's ``detail``: the message, which every subclass keeps safe."""
        return str(self)

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries (``Retry-After``, ``WWW-Authenticate``)."""
        return {}

    @property
    def extensions(self) -> dict[str, Any]:
        """Members added to the problem document beside ``title`` and ``detail``."""
        return {}
