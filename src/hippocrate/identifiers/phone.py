"""Phone numbers: canonical E.164 form and display, with Google's libphonenumber port.

The canonical form is E.164 (``+33612345678``): one ``+``, the country code, the
national significant number, nothing else. Every writing a person uses for the same
line (``06 12 34 56 78``, ``+33 6 12 34 56 78``, ``0033 6 12 34 56 78``,
``+33 (0)6 12 34 56 78``) gives the same string, so the blind index finds it.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from hippocrate.i18n import _n
from hippocrate.identifiers.errors import InvalidPhone

__all__ = ["format_phone", "normalise_phone"]

E164_MAX_LENGTH = 16  # "+" and at most 15 digits (ITU-T E.164)
MAX_INPUT_LENGTH = 100
"""Longer input is refused before any parsing; E.164 numbers have at most 15 digits."""

# What may surround the digits. Anything else (letters, "ext.", "tel:") is refused
# rather than silently dropped: libphonenumber would otherwise read "06 12 34 56 78
# ext. 12" as a valid number and the extension would vanish from the E.164 form.
_PUNCTUATION = frozenset("+-.()/[]\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# The same test as a pattern compiled once, run by the regex engine instead of a Python
# loop per character: on str patterns ``\d`` is exactly ``str.isdecimal`` (Unicode
# category Nd) and ``\s`` exactly ``str.isspace``, for every code point (a test holds it).
_ALLOWED = re.compile("[\\d\\s" + "".join(re.escape(c) for c in sorted(_PUNCTUATION)) + "]*")
_WHITESPACE = re.compile(r"\s")


def _check_characters(value: str) -> None:
    if _ALLOWED.fullmatch(value) is None:
        raise InvalidPhone(
            _n(
                "A phone number may only contain digits, spaces, a leading +,"
                " and the separators . - ( ) /."
            ),
            code="characters",
        )
    stripped = value.lstrip()
    if "+" in stripped[1:]:
        raise InvalidPhone(_n("A + may only start the phone number."), code="characters")


def _parse(value: str, region: str | None) -> PhoneNumber:
    """Parse and validate; every failure becomes :class:`InvalidPhone`."""
    if not isinstance(value, str):
        raise TypeError(f"phone number must be a str, not {type(value).__name__}")
    if len(value) > MAX_INPUT_LENGTH:
        raise InvalidPhone(
            _n("The phone number is too long (at most {maximum} characters)."),
            code="too_long",
            maximum=MAX_INPUT_LENGTH,
        )
    # Full-width digits and plus sign (East Asian input methods) become ASCII.
    value = unicodedata.normalize("NFKC", value)
    _check_characters(value)
    # libphonenumber takes spaces between digits but not tabs or line breaks.
    value = _WHITESPACE.sub(" ", value)
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None:
            message = _n("The phone number must start with + and the country code.")
        else:
            message = _n("This is not a phone number.")
        raise InvalidPhone(message, code="unparsable") from None
    if number.extension:
        raise InvalidPhone(_n("Phone extensions are not supported."), code="extension")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            _n("This phone number does not exist (wrong number of digits or unknown prefix)."),
            code="not_valid",
        )
    return number


def normalise_phone(value: str, default_region: str = "FR") -> str:
    r"""Return the E.164 form of a phone number, or raise :class:`InvalidPhone`.

    ``default_region`` (ISO 3166-1 alpha-2, e.g. ``"FR"``) is the country assumed for
    numbers written without ``+`` or an international prefix (``00`` from France).

    Accepted: digits (full-width too), spaces, ``. - ( ) /``, one leading ``+``;
    national (``06 12 34 56 78``), international (``+33 6 12 34 56 78``,
    ``0033612345678``) and trunk-prefix (``+33 (0)6 12 34 56 78``) writings.

    Guarantees:
        - the result matches ``\+[1-9][0-9]{1,14}`` and libphonenumber considers it
          a valid number (right length and prefix for its country and type);
        - two writings of the same number give the same string, and
          ``normalise_phone(normalise_phone(x)) == normalise_phone(x)``.

    Not guaranteed: that the line exists, is a mobile, or belongs to the person.

    Raises:
        InvalidPhone: code ``too_long``, ``characters`` (letters, extensions written
            as text, a ``+`` elsewhere than first), ``unparsable``, ``extension``,
            ``not_valid`` (libphonenumber's ``is_valid_number`` is false).
        ValueError: ``default_region`` is not a region libphonenumber knows (a
            programming error, so not an :class:`InvalidPhone`).
        TypeError: ``value`` is not a str.
    """
    region = default_region.upper() if isinstance(default_region, str) else default_region
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default_region {default_region!r}")
    number = _parse(value, region)
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    # libphonenumber accepts some over-long numbers (German ranges with open-ended
    # lengths); E.164 allows 15 digits at most.
    if len(e164) > E164_MAX_LENGTH:
        raise InvalidPhone(_n("The phone number has too many digits."), code="not_valid")
    return e164


def format_phone(e164: str) -> str:
    """Return the international display form, e.g. ``"+33 6 12 34 56 78"``.

    ``e164`` is a value :func:`normalise_phone` returned; any other international
    writing (starting with ``+``) is accepted too. A national writing is refused,
    since no region is assumed here.

    Raises:
        InvalidPhone: not a valid number in international writing.
    """
    return phonenumbers.format_number(_parse(e164, None), PhoneNumberFormat.INTERNATIONAL)
