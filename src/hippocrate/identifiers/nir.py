"""French social security number (NIR): canonical form, display, mask, identity check.

The canonical form is what gets sealed and blind-indexed: 15 ASCII characters, the 13
characters of the NIR then the 2-digit check key, uppercase, no separator, Corsican
departments kept as ``2A``/``2B`` (never rewritten to ``19``/``18``: those are the
numbers the key is computed on, not the number the person holds).

The check itself is python-stdnum's :mod:`stdnum.fr.nir`; this module only does the
cleaning around it and turns its failures into :class:`InvalidNIR` with a message a
person can act on. What is checked is the shape and the mod-97 key, as stdnum does; the
plausibility of the parts (a month of 13, a department that does not exist) is not,
because the registry holds numbers that official rules allow but a naive reader would
refuse (see :func:`nir_matches_identity`).
"""

from __future__ import annotations

import unicodedata

from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.fr import nir as stdnum_nir

from hippocrate.i18n import Message, _n
from hippocrate.identifiers.errors import InvalidIdentifier, InvalidNIR

__all__ = ["format_nir", "mask_nir", "nir_matches_identity", "normalise_nir"]

NIR_LENGTH = 15
"""Characters in the canonical form: 13 for the number, 2 for the key."""

MAX_INPUT_LENGTH = 100
"""Longer input is refused before any work: a NIR with generous separators is ~25."""

# Separators people type or paste between the groups. NFKC has already turned
# no-break and other exotic spaces into spaces or left them as whitespace; dashes
# other than ASCII survive NFKC, hence the explicit list.
_SEPARATORS = frozenset(".-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_DIGITS = frozenset("0123456789")
_ALLOWED = _DIGITS | frozenset("AB")
_CORSICA = ("2A", "2B")

# First digit of the NIR per declared sex. 1 and 2 are what a definitive NIR carries;
# 3/4 (older registrations of people born abroad) and 7/8 (provisional numbers) follow
# the same odd = male, even = female rule and are valid NIRs of that person.
_SEX_DIGITS = {"M": frozenset("137"), "F": frozenset("248")}


def _clean(value: str) -> str:
    """Return ``value`` without separators, NFKC-normalised and uppercased.

    NFKC turns full-width digits and letters (typed with an East Asian input method,
    or pasted from a PDF) into ASCII, so they compare equal to what they look like.
    """
    if not isinstance(value, str):
        raise TypeError(f"NIR must be a str, not {type(value).__name__}")
    if len(value) > MAX_INPUT_LENGTH:
        raise InvalidNIR(
            _n(
                "The social security number is too long"
                " (at most {maximum} characters including spaces)."
            ),
            code="too_long",
            maximum=MAX_INPUT_LENGTH,
        )
    value = unicodedata.normalize("NFKC", value)
    return "".join(c for c in value if not c.isspace() and c not in _SEPARATORS).upper()


def normalise_nir(value: str) -> str:
    """Return the canonical 15-character form of a NIR, or raise :class:`InvalidNIR`.

    Accepted writings: any mix of spaces (including no-break), dots and dashes between
    the characters, lower or upper case ``2a``/``2b``, full-width characters.

    Guarantees:
        - the result is 15 ASCII characters: digits, except ``2A`` or ``2B`` at
          positions 6-7 (Corsican departments);
        - its last 2 digits are the correct mod-97 key (checked by stdnum);
        - two writings of the same number give the same string, and
          ``normalise_nir(normalise_nir(x)) == normalise_nir(x)``.

    Not guaranteed: that the number was ever issued, nor that its month or place of
    birth is a real one.

    Raises:
        InvalidNIR: code ``too_long`` (input over :data:`MAX_INPUT_LENGTH`),
            ``characters`` (anything but digits, separators, and 2A/2B in the
            department), ``length`` (not 15 characters once separators are removed),
            ``check_key`` (the key does not match the 13 first characters).
            The message never contains the number.
        TypeError: ``value`` is not a str (a programming error, not bad input).
    """
    compact = _clean(value)
    if not compact:
        raise InvalidNIR(_n("The social security number is empty."), code="length")
    if any(c not in _ALLOWED for c in compact):
        raise InvalidNIR(
            _n(
                "The social security number may only contain digits"
                " (and 2A or 2B for a department of Corsica)."
            ),
            code="characters",
        )
    if len(compact) != NIR_LENGTH:
        if len(compact) == NIR_LENGTH - 2:
            message = Message(
                _n(
                    "The social security number is missing its 2-digit key"
                    " (15 characters expected)."
                )
            )
        else:
            message = Message(
                _n(
                    "The social security number must have 15 characters"
                    " (13 and a 2-digit key), not {length}."
                ),
                length=len(compact),
            )
        raise InvalidNIR(message, code="length")
    department = compact[5:7]
    rest = compact[:5] + compact[7:]
    if any(c not in _DIGITS for c in rest) or (
        any(c not in _DIGITS for c in department) and department not in _CORSICA
    ):
        raise InvalidNIR(
            _n(
                "Letters are only allowed as the department 2A or 2B (Corsica),"
                " in 6th and 7th position."
            ),
            code="characters",
        )
    try:
        return stdnum_nir.validate(compact)
    except InvalidChecksum:
        raise InvalidNIR(
            _n(
                "The key (2 last digits) does not match the social security number:"
                " a digit was probably mistyped."
            ),
            code="check_key",
        ) from None
    except ValidationError:  # pragma: no cover - the checks above leave only the key
        raise InvalidNIR(
            _n("The social security number is not well formed."), code="characters"
        ) from None


def format_nir(nir: str) -> str:
    """Return the usual display form, e.g. ``"1 85 05 78 006 084 36"``.

    Groups: sex, year, month, department, commune, order, key (1-2-2-2-3-3-2), as on
    the carte Vitale. ``nir`` may be in any writing :func:`normalise_nir` accepts.

    Raises:
        InvalidNIR: ``nir`` is not a valid NIR.
    """
    return stdnum_nir.format(normalise_nir(nir))


def mask_nir(nir: str) -> str:
    """Return the NIR with everything hidden but the sex digit and the key.

    Exact form: ``"S ** ** ** *** *** KK"`` (21 characters) where ``S`` is the first
    digit and ``KK`` the 2-digit key, e.g. ``"1 ** ** ** *** *** 36"``. The grouping
    is that of :func:`format_nir`; every one of the 12 middle characters (year, month,
    department, commune, order) is a ``*``, Corsican departments included.

    What the mask still tells: the sex digit, and the key, which is a function of the
    hidden digits (97 - n mod 97), so it narrows them down by a factor of 97. Show it
    only where a person must recognise their own number among a few.

    Raises:
        InvalidNIR: ``nir`` is not a valid NIR (nothing is masked and returned).
    """
    canonical = normalise_nir(nir)
    return f"{canonical[0]} ** ** ** *** *** {canonical[13:]}"


def _check_identity_arguments(sex: str, birth_year: int, birth_month: int) -> None:
    if sex not in _SEX_DIGITS:
        raise InvalidIdentifier(_n('sex must be "M" or "F".'), code="invalid", field="sex")
    if isinstance(birth_year, bool) or not isinstance(birth_year, int) or birth_year < 0:
        raise InvalidIdentifier(
            _n("birth_year must be a non-negative integer."),
            code="invalid",
            field="birth_year",
        )
    if (
        isinstance(birth_month, bool)
        or not isinstance(birth_month, int)
        or not 1 <= birth_month <= 12
    ):
        raise InvalidIdentifier(
            _n("birth_month must be an integer from 1 to 12."),
            code="invalid",
            field="birth_month",
        )


def _month_matches(code: int, birth_month: int) -> bool:
    """Whether the NIR's month code is compatible with a birth in ``birth_month``.

    01-12 is the month itself and must be equal. 20-42 and 50-99 are the fictitious
    codes INSEE gives when the civil-status record did not state the month (people
    registered from incomplete records, often born abroad): they say nothing about
    the month, so they match any. Some readers take 31-42 as "month + 30"; that rule
    is not in the official descriptions, so it is not relied on. 00, 13-19 and 43-49
    are not month codes at all and match nothing.
    """
    if 1 <= code <= 12:
        return code == birth_month
    return 20 <= code <= 42 or 50 <= code <= 99


def nir_matches_identity(nir: str, *, sex: str, birth_year: int, birth_month: int) -> bool:
    """Whether a NIR is consistent with a person's declared sex and birth year/month.

    A ``True`` answer means "nothing contradicts": it is not a proof that the number
    belongs to the person (the place of birth and the order number are not compared).

    Rules, tolerant where the official coding is:
        - ``sex`` is ``"M"`` or ``"F"``. ``"M"`` matches a first digit of 1, ``"F"``
          of 2; 3/4 (older registrations of people born abroad) and 7/8 (provisional
          numbers) follow the same odd/even rule and match too.
        - the NIR holds the last 2 digits of the year, so 1905 and 2005 both match
          ``05``.
        - month: see :func:`_month_matches` (01-12 exact; 20-42 and 50-99 mean
          "month unknown" and match any month).

    Raises:
        InvalidNIR: ``nir`` is not a valid NIR.
        InvalidIdentifier: ``sex``, ``birth_year`` or ``birth_month`` is out of range
            (``field`` names the argument).
    """
    _check_identity_arguments(sex, birth_year, birth_month)
    canonical = normalise_nir(nir)
    return (
        canonical[0] in _SEX_DIGITS[sex]
        and canonical[1:3] == f"{birth_year % 100:02d}"
        and _month_matches(int(canonical[3:5]), birth_month)
    )
