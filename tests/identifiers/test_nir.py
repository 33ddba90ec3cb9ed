"""NIR: canonical form, refusals, display, mask and identity check."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr.nir import calc_check_digits

from hippocrate.identifiers import (
    InvalidIdentifier,
    InvalidNIR,
    format_nir,
    mask_nir,
    nir_matches_identity,
    normalise_nir,
)
from tests.identifiers.strategies import (
    FICTITIOUS_MONTHS,
    REAL_MONTHS,
    SETTINGS,
    build_nir,
    corsican_nirs,
    nirs,
    refusal,
    scattered,
)

CANONICAL = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}")

# python-stdnum's own documentation examples.
STDNUM_DOC_VALID = {
    "2 95 10 99 126 111 93": "295109912611193",
    "253072B07300470": "253072B07300470",
    "253072A07300443": "253072A07300443",
}
# 1 85 05 78 006 084: the key is 91 (the "36" often quoted in examples is wrong).
MALE_1985 = "1 85 05 78 006 084 91"
CORSICA_2A = "15301" + "2A" + "041004" + calc_check_digits("153012A041004")
CORSICA_2B = "26911" + "2B" + "123045" + calc_check_digits("269112B123045")


# -- canonical form --------------------------------------------------------------


@pytest.mark.parametrize(("written", "canonical"), STDNUM_DOC_VALID.items())
def test_stdnum_documentation_examples(written: str, canonical: str) -> None:
    assert normalise_nir(written) == canonical


@pytest.mark.parametrize(
    "written",
    [
        "185057800608491",
        "1 85 05 78 006 084 91",
        "1.85.05.78.006.084.91",
        "1-85-05-78-006-084-91",
        "  1 85 05 78 006 084 91\n",
        "1\u00a085\u00a005\u00a078\u00a0006\u00a0084\u00a091",  # no-break spaces
        "1\u202f85\u202f05 78\t006 084\u201391",  # narrow nbsp, tab, en dash
        "\uff11\uff18\uff15\uff10\uff15\uff17\uff18\uff10\uff10\uff16\uff10\uff18\uff14\uff19\uff11",
    ],
)
def test_writings_of_one_nir_give_one_canonical_form(written: str) -> None:
    assert normalise_nir(written) == "185057800608491"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        (CORSICA_2A, CORSICA_2A),
        (CORSICA_2A.lower(), CORSICA_2A),
        (CORSICA_2B, CORSICA_2B),
        (format_nir(CORSICA_2B).lower(), CORSICA_2B),
    ],
)
def test_corsica_keeps_2a_2b_uppercase(written: str, canonical: str) -> None:
    assert normalise_nir(written) == canonical
    assert canonical[5:7] in ("2A", "2B")


# -- refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "295109912611199",  # stdnum's invalid check digit example
        "1 85 05 78 006 084 36",
        "185057800608492",
        CORSICA_2A[:-2] + "00",
        # 2A and 2B are different numbers: the key tells them apart.
        CORSICA_2A.replace("2A", "2B"),
    ],
)
def test_wrong_key_is_refused(written: str) -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(written)
    assert caught.value.code == "check_key"
    assert "key" in str(caught.value)


@pytest.mark.parametrize(
    ("written", "count"),
    [
        ("6546546546546703", 16),  # stdnum's invalid length example
        ("18505780060849", 14),
        ("1", 1),
        ("1 85 05 78 006 084 91 0", 16),
    ],
)
def test_wrong_length_is_refused_with_the_count(written: str, count: int) -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(written)
    assert caught.value.code == "length"
    assert f"not {count}" in str(caught.value)


@pytest.mark.parametrize("written", ["", "   ", " . - "])
def test_empty_is_refused_as_length(written: str) -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(written)
    assert caught.value.code == "length"


def test_missing_key_is_named() -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir("1 85 05 78 006 084")
    assert caught.value.code == "length"
    assert "missing its 2-digit key" in str(caught.value)


@pytest.mark.parametrize(
    "written",
    [
        "253072C07300443",  # stdnum's invalid format example
        "1850578006084AB",
        "2A5072007300443",
        "253073A07300443",  # A after a 3: not a Corsican department
        "1 85 05 78 OO6 084 91",  # letter O for zero
        "1 85 05 78 006 084 9l",
        "1/85/05/78/006/084/91",
        "185057800608491\x00",
        "1 85 05 78 006 084 91ß",
    ],
)
def test_letters_and_symbols_are_refused(written: str) -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(written)
    assert caught.value.code == "characters"


def test_very_long_input_is_refused_before_work() -> None:
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(" " * 10_000 + "185057800608491")
    assert caught.value.code == "too_long"


def test_non_str_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        normalise_nir(185057800608491)  # type: ignore[arg-type]


@given(nir=nirs(), typo=st.data())
@SETTINGS
def test_refusal_message_never_echoes_the_number(nir: str, typo: st.DataObject) -> None:
    position = typo.draw(st.integers(min_value=0, max_value=14))
    wrong = nir[:position] + typo.draw(st.sampled_from("0123456789xX")) + nir[position + 1 :]
    for attempt in (wrong, wrong[:-1], wrong + "1", format_nir(nir)[:-1] + "?"):
        exc = refusal(normalise_nir, attempt)
        if exc is not None:
            assert not re.search(r"[0-9]{4}", str(exc)), str(exc)
            assert isinstance(exc, InvalidNIR)


# -- properties of the canonical form --------------------------------------------


@given(nir=nirs())
@SETTINGS
def test_generated_nirs_are_accepted_as_is(nir: str) -> None:
    assert normalise_nir(nir) == nir
    assert CANONICAL.fullmatch(nir)


@given(value=nirs().flatmap(scattered))
@SETTINGS
def test_normalise_is_idempotent(value: str) -> None:
    once = normalise_nir(value)
    assert normalise_nir(once) == once


@given(data=st.data(), nir=nirs() | corsican_nirs)
@SETTINGS
def test_separators_and_case_never_change_the_canonical_form(data: st.DataObject, nir: str) -> None:
    assert normalise_nir(data.draw(scattered(nir))) == nir


@given(data=st.data(), nir=nirs() | corsican_nirs)
@SETTINGS
def test_any_single_digit_change_is_refused(data: st.DataObject, nir: str) -> None:
    """A digit replaced by another digit, anywhere in the 15, is always refused.

    True for the mod-97 key: in the 13 first characters the change adds d * 10**k with
    1 <= |d| <= 9 to the number, never a multiple of the prime 97, so the key changes;
    in the key, the key is unique. The one exception to "the key catches it" is the
    2 of a Corsican 2A/2B, which is refused for its form before the key is looked at.
    """
    digit_positions = [i for i, c in enumerate(nir) if c.isdigit()]
    position = data.draw(st.sampled_from(digit_positions))
    new_digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != nir[position]))
    typo = nir[:position] + new_digit + nir[position + 1 :]
    with pytest.raises(InvalidNIR) as caught:
        normalise_nir(typo)
    corsican_two = nir[5:7] in ("2A", "2B") and position == 5
    assert caught.value.code == ("characters" if corsican_two else "check_key")


@given(data=st.data(), nir=nirs())
@SETTINGS
def test_adjacent_transpositions_in_the_body_are_refused(data: st.DataObject, nir: str) -> None:
    """Swapping two different adjacent digits of the 13 adds 9 * (a - b) * 10**k."""
    position = data.draw(st.integers(min_value=0, max_value=11))
    a, b = nir[position], nir[position + 1]
    if a == b or not (a.isdigit() and b.isdigit()):
        return
    swapped = nir[:position] + b + a + nir[position + 2 :]
    with pytest.raises(InvalidNIR):
        normalise_nir(swapped)


def test_the_key_does_not_catch_every_two_digit_change() -> None:
    """Documents the limit of the claim above: +97 on the order number goes unseen."""
    original = build_nir(1, 85, 5, "78", 6, 4)
    changed = build_nir(1, 85, 5, "78", 6, 4 + 97)  # order 004 -> 101: two digits
    assert original[-2:] == changed[-2:]
    assert normalise_nir(changed) == changed != original


def test_corsica_2a_and_19_share_a_key_but_stay_distinct() -> None:
    """The key is computed with 2A as 19, so both are valid and must not collapse."""
    corsican = build_nir(1, 53, 1, "2A", 41, 4)
    numeric = build_nir(1, 53, 1, "19", 41, 4)
    assert corsican[-2:] == numeric[-2:]
    assert normalise_nir(corsican) != normalise_nir(numeric)


# -- display ---------------------------------------------------------------------


def test_format_groups_like_the_carte_vitale() -> None:
    assert format_nir("185057800608491") == "1 85 05 78 006 084 91"
    assert format_nir(CORSICA_2A.lower()) == (f"1 53 01 2A 041 004 {CORSICA_2A[-2:]}")


@given(nir=nirs() | corsican_nirs)
@SETTINGS
def test_format_round_trips(nir: str) -> None:
    shown = format_nir(nir)
    assert [len(group) for group in shown.split(" ")] == [1, 2, 2, 2, 3, 3, 2]
    assert normalise_nir(shown) == nir


def test_format_refuses_invalid() -> None:
    with pytest.raises(InvalidNIR):
        format_nir("1 85 05 78 006 084 36")


# -- mask ------------------------------------------------------------------------


def test_mask_exact_form() -> None:
    assert mask_nir("1 85 05 78 006 084 91") == "1 ** ** ** *** *** 91"
    assert mask_nir(CORSICA_2B) == f"2 ** ** ** *** *** {CORSICA_2B[-2:]}"


@given(data=st.data(), nir=nirs() | corsican_nirs)
@SETTINGS
def test_mask_never_reveals_the_middle(data: st.DataObject, nir: str) -> None:
    masked = mask_nir(data.draw(scattered(nir)))
    assert masked == f"{nir[0]} ** ** ** *** *** {nir[13:]}"
    middle = masked[1:-2]
    assert set(middle) == {"*", " "}
    assert middle.count("*") == 12


def test_mask_refuses_invalid_rather_than_masking_it() -> None:
    with pytest.raises(InvalidNIR):
        mask_nir("1 85 05 78 006 084 36")


# -- identity --------------------------------------------------------------------


def test_identity_matches_sex_year_month() -> None:
    assert nir_matches_identity(MALE_1985, sex="M", birth_year=1985, birth_month=5)
    assert nir_matches_identity(MALE_1985, sex="M", birth_year=2085, birth_month=5)
    assert not nir_matches_identity(MALE_1985, sex="F", birth_year=1985, birth_month=5)
    assert not nir_matches_identity(MALE_1985, sex="M", birth_year=1986, birth_month=5)
    assert not nir_matches_identity(MALE_1985, sex="M", birth_year=1985, birth_month=6)


@pytest.mark.parametrize(
    ("digit", "sex"), [(1, "M"), (2, "F"), (3, "M"), (4, "F"), (7, "M"), (8, "F")]
)
def test_identity_sex_digits(digit: int, sex: str) -> None:
    nir = build_nir(digit, 90, 3, "75", 56, 12)
    other = "F" if sex == "M" else "M"
    assert nir_matches_identity(nir, sex=sex, birth_year=1990, birth_month=3)
    assert not nir_matches_identity(nir, sex=other, birth_year=1990, birth_month=3)


@pytest.mark.parametrize("digit", [0, 5, 6, 9])
def test_identity_unknown_sex_digits_match_nobody(digit: int) -> None:
    nir = build_nir(digit, 90, 3, "75", 56, 12)
    assert not nir_matches_identity(nir, sex="M", birth_year=1990, birth_month=3)
    assert not nir_matches_identity(nir, sex="F", birth_year=1990, birth_month=3)


@given(
    month_code=FICTITIOUS_MONTHS,
    birth_month=REAL_MONTHS,
    sex=st.sampled_from([1, 2]),
)
@SETTINGS
def test_identity_fictitious_month_codes_match_any_month(
    month_code: int, birth_month: int, sex: int
) -> None:
    nir = build_nir(sex, 62, month_code, "99", 352, 7)
    assert nir_matches_identity(
        nir, sex="M" if sex == 1 else "F", birth_year=1962, birth_month=birth_month
    )


@pytest.mark.parametrize("month_code", [0, 13, 15, 19, 43, 49])
def test_identity_non_month_codes_match_nothing(month_code: int) -> None:
    nir = build_nir(1, 62, month_code, "99", 352, 7)
    assert normalise_nir(nir) == nir  # valid key: only the identity check refuses it
    for month in range(1, 13):
        assert not nir_matches_identity(nir, sex="M", birth_year=1962, birth_month=month)


@given(
    nir=nirs(months=REAL_MONTHS),
    year=st.integers(min_value=1900, max_value=2099),
    month=REAL_MONTHS,
)
@SETTINGS
def test_identity_real_months_must_be_equal(nir: str, year: int, month: int) -> None:
    sex = "M" if nir[0] == "1" else "F"
    expected = int(nir[1:3]) == year % 100 and int(nir[3:5]) == month
    assert nir_matches_identity(nir, sex=sex, birth_year=year, birth_month=month) is expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sex": "X", "birth_year": 1985, "birth_month": 5}, "sex"),
        ({"sex": "m", "birth_year": 1985, "birth_month": 5}, "sex"),
        ({"sex": "M", "birth_year": -1, "birth_month": 5}, "birth_year"),
        ({"sex": "M", "birth_year": 1985, "birth_month": 0}, "birth_month"),
        ({"sex": "M", "birth_year": 1985, "birth_month": 13}, "birth_month"),
    ],
)
def test_identity_bad_arguments_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        nir_matches_identity(MALE_1985, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert not isinstance(caught.value, InvalidNIR)


def test_identity_invalid_nir_is_refused() -> None:
    with pytest.raises(InvalidNIR):
        nir_matches_identity("1 85 05 78 006 084 36", sex="M", birth_year=1985, birth_month=5)
