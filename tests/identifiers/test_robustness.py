"""Whatever str a form sends, only InvalidIdentifier (a 4xx) can come out."""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given

from hippocrate.identifiers import (
    InvalidIdentifier,
    format_nir,
    format_phone,
    mask_nir,
    nir_matches_identity,
    normalise_email,
    normalise_nir,
    normalise_phone,
)
from tests.identifiers.strategies import SETTINGS, arbitrary_text, refusal


def _identity(value: str) -> object:
    return nir_matches_identity(value, sex="F", birth_year=1995, birth_month=10)


FUNCTIONS: dict[str, Callable[[str], object]] = {
    "normalise_nir": normalise_nir,
    "format_nir": format_nir,
    "mask_nir": mask_nir,
    "nir_matches_identity": _identity,
    "normalise_phone": normalise_phone,
    "format_phone": format_phone,
    "normalise_email": normalise_email,
}


@given(text=arbitrary_text)
@SETTINGS
def test_arbitrary_text_raises_only_invalid_identifier(text: str) -> None:
    for name, function in FUNCTIONS.items():
        # Any other exception propagates and fails the test.
        exc = refusal(function, text)
        if exc is not None:
            assert str(exc), name
            assert exc.field in {"nir", "phone", "email"}, name


@given(text=arbitrary_text)
@SETTINGS
def test_what_is_accepted_has_the_promised_shape(text: str) -> None:
    try:
        nir = normalise_nir(text)
    except InvalidIdentifier:
        pass
    else:
        assert re.fullmatch(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}", nir)
    try:
        phone = normalise_phone(text)
    except InvalidIdentifier:
        pass
    else:
        assert re.fullmatch(r"\+[1-9][0-9]{1,14}", phone)
    try:
        email = normalise_email(text)
    except InvalidIdentifier:
        pass
    else:
        assert normalise_email(email) == email
