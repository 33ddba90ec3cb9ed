"""The identifiers package's exceptions.

Every refusal of a value by a normaliser is an :class:`InvalidIdentifier`, a
:class:`ValueError` and a ``HippocrateError`` answered 422 wherever it is raised. The
message is meant for the person who typed the value: it says what is wrong and never
repeats the value itself (a NIR in a log line is a leak). ``code`` is a stable
machine-readable reason for callers that need to branch or translate.
"""

from __future__ import annotations

from typing import ClassVar

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n


class InvalidIdentifier(HippocrateError, ValueError):
    """A value was refused by a normaliser.

    Attributes:
        field: which kind of value was refused ("nir", "phone", "email", or the name
            of the argument, such as "birth_month").
        code: short stable reason, documented by each normaliser.
        message: the human-readable explanation in English (also ``str(exc)``), a
            marked template formatted with the keyword arguments beside ``code`` and
            ``field``.
    """

    status = 422
    title = _n("Invalid identifier")
    default_field: ClassVar[str] = "identifier"

    def __init__(
        self,
        message: str,
        /,
        *,
        code: str = "invalid",
        field: str | None = None,
        **params: object,
    ) -> None:
        super().__init__(message, **params)
        self.code = code
        self.field = field if field is not None else self.default_field


class InvalidNIR(InvalidIdentifier):
    """A French social security number (NIR) was refused; the message never echoes it.

    Codes: ``too_long``, ``characters``, ``length``, ``check_key``.
    """

    default_field = "nir"


class InvalidPhone(InvalidIdentifier):
    """A phone number was refused.

    Codes: ``too_long``, ``characters``, ``unparsable``, ``extension``, ``not_valid``.
    """

    default_field = "phone"


class InvalidEmail(InvalidIdentifier):
    """An email address was refused; the message carries email-validator's reason.

    Codes: ``too_long``, ``syntax``.
    """

    default_field = "email"
