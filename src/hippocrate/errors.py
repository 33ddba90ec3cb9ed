"""The base of every refusal a caller can cause, low in the import graph.

Each domain's errors derive from :class:`HippocrateError` and say, as class attributes,
the HTTP status and title they answer; ``api/problems.py`` has one handler for the base
class and so needs no list of every domain's errors (Polar's ``PolarError`` is the
model). A domain never imports the web to say how it is answered: this module imports
nothing of Hippocrate but :mod:`hippocrate.i18n` (itself a leaf), nor of the web.

Messages and titles are English, marked with :func:`hippocrate.i18n._n` for the
catalogues. A message with values is a template with named fields and the values as
keyword arguments (``WeakPassword(_n("at least {minimum} characters"), minimum=12)``):
``str(exc)`` is the English text, formatted (logs, the CLI); the API translates the
template and the title into the request's language and formats after (``detail_in``).
The values are the code's own (limits, codes, dates), never what a caller wrote.

An error whose counters must survive the refusal (a wrong password, a wrong code, a
lock) sets ``commit = True``: the owner of the unit of work commits what the service
recorded before the error, then lets the error through to be answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hippocrate.i18n import Message, _n, render


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
    title: ClassVar[str] = _n("Bad request")
    commit: ClassVar[bool] = False

    def __init__(self, message: str = "", /, **params: object) -> None:
        """``message``: the English template, marked with ``_n``; ``params``: its values.

        Without ``params`` the message is used as it is (not formatted); a
        :class:`~hippocrate.i18n.Message` brings its own template and values.
        """
        if isinstance(message, Message) and not params:
            template, values = message.template, dict(message.params)
        else:
            template, values = message, params
        self.message = Message(template, **values)
        self.template = template
        self.params: Mapping[str, object] = values
        super().__init__(str(self.message))

    @property
    def detail(self) -> str:
        """The problem's ``detail`` in English: the message, which every subclass keeps
        safe."""
        return str(self)

    def detail_in(self, language: str) -> str:
        """The problem's ``detail`` in ``language`` (English when it has no translation)."""
        return self.message.in_language(language)

    def title_in(self, language: str) -> str:
        """The problem's ``title`` in ``language``."""
        return render(self.title, {}, language)

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries (``Retry-After``, ``WWW-Authenticate``)."""
        return {}

    @property
    def extensions(self) -> dict[str, Any]:
        """Members added to the problem document beside ``title`` and ``detail``."""
        return {}


class InvalidField(HippocrateError, ValueError):
    """A value a validator refuses, with a marked message: pydantic reports it under its
    field (``errors[].msg`` of the 422), which the API translates like any message."""

    status: ClassVar[int] = 422
    title: ClassVar[str] = _n("Invalid request")
