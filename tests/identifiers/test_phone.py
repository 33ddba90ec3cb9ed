"""Phone numbers: E.164 canonical form, refusals, display."""

from __future__ import annotations

import re
import sys

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hippocrate.identifiers import InvalidPhone, format_phone, normalise_phone
from hippocrate.identifiers import phone as phone_module
from tests.identifiers.strategies import SEPARATORS, SETTINGS, french_mobiles, french_writings

E164 = re.compile(r"\+[1-9][0-9]{1,14}")


@pytest.mark.parametrize(
    "written",
    [
        "06 12 34 56 78",
        "0612345678",
        "06.12.34.56.78",
        "06-12-34-56-78",
        "+33 6 12 34 56 78",
        "+33612345678",
        "0033612345678",
        "00 33 6 12 34 56 78",
        "(0)6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "+33(0)612345678",
        "  06 12 34 56 78\n",
        "06\u00a012\u00a034\u00a056\u00a078",
        "\uff0b\uff13\uff13\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",  # full-width
    ],
)
def test_french_writings_give_one_e164(written: str) -> None:
    assert normalise_phone(written) == "+33612345678"


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+1 650 253 0000", "+16502530000"),
        ("+1 (650) 253-0000", "+16502530000"),
        ("+44 20 7946 0018", "+442079460018"),
        ("+32 2 551 18 11", "+3225511811"),
        ("+41 44 668 18 00", "+41446681800"),
        ("0041 44 668 18 00", "+41446681800"),  # 00 is France's international prefix
        ("+33 1 44 55 66 77", "+33144556677"),  # landline
    ],
)
def test_foreign_numbers_with_international_prefix(written: str, e164: str) -> None:
    assert normalise_phone(written) == e164


@pytest.mark.parametrize("region", ["DE", "BE", "CH", "US", "GB", "JP", "MA", "RE"])
def test_libphonenumber_example_numbers(region: str) -> None:
    example = phonenumbers.example_number(region)
    assert example is not None
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    international = phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert normalise_phone(international) == e164
    assert normalise_phone(national, default_region=region) == e164
    assert normalise_phone(national, default_region=region.lower()) == e164


def test_default_region_decides_national_numbers() -> None:
    assert normalise_phone("(650) 253-0000", default_region="US") == "+16502530000"
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone("(650) 253-0000")  # read as French, it does not exist
    assert caught.value.code == "not_valid"


@pytest.mark.parametrize("region", ["XX", "", "France", "ZZ"])
def test_unknown_default_region_is_a_programming_error(region: str) -> None:
    with pytest.raises(ValueError, match="default_region") as caught:
        normalise_phone("06 12 34 56 78", default_region=region)
    assert not isinstance(caught.value, InvalidPhone)


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("", "unparsable"),
        ("   ", "unparsable"),
        ("+", "unparsable"),
        ("0612", "not_valid"),
        ("06 12 34 56 78 9", "not_valid"),
        ("06 12 34 56 7", "not_valid"),
        ("00 00 00 00 00", "not_valid"),
        ("+33 0 12 34 56 78", "not_valid"),
        ("+999 612 345 678", "unparsable"),  # no country 999
        ("+1 555 000 0000", "not_valid"),
        ("abc", "characters"),
        ("06 12 34 56 78 ext. 12", "characters"),  # the extension would be dropped
        ("06 12 34 56 78;ext=12", "characters"),
        ("tel:+33612345678", "characters"),
        ("+33 6 12 34 56 78 +", "characters"),
        ("06 12 34 56 78 +33", "characters"),
        ("1-800-FLOWERS", "characters"),
        ("06 12 34 56 78 / 07 12 34 56 78", "unparsable"),
        ("0" * 101, "too_long"),
    ],
)
def test_invalid_numbers_are_refused(written: str, code: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(written)
    assert caught.value.code == code
    assert caught.value.field == "phone"


def test_non_str_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        normalise_phone(612345678)  # type: ignore[arg-type]


def test_format_for_display() -> None:
    assert format_phone("+33612345678") == "+33 6 12 34 56 78"
    assert format_phone("+16502530000") == "+1 650-253-0000"


@pytest.mark.parametrize("written", ["0612345678", "0033612345678", "+33 6 12", "x"])
def test_format_refuses_what_is_not_an_international_valid_number(written: str) -> None:
    with pytest.raises(InvalidPhone):
        format_phone(written)


@given(national=french_mobiles)
@SETTINGS
def test_french_mobiles_national_and_international_agree(national: str) -> None:
    expected = "+33" + national[1:]
    for written in french_writings(national):
        assert normalise_phone(written) == expected, written
    assert normalise_phone(format_phone(expected)) == expected


@given(national=french_mobiles, data=st.data())
@SETTINGS
def test_separators_never_change_the_e164(national: str, data: st.DataObject) -> None:
    written = "".join(c + data.draw(SEPARATORS) for c in national)
    assert normalise_phone(written) == "+33" + national[1:]


@given(
    written=french_mobiles.flatmap(lambda n: st.sampled_from(french_writings(n)))
    | st.from_regex(r"\A\+[1-9][0-9 ]{6,16}\Z"),
)
@SETTINGS
def test_normalise_is_idempotent(written: str) -> None:
    try:
        once = normalise_phone(written)
    except InvalidPhone:
        return
    assert E164.fullmatch(once)
    assert normalise_phone(once) == once
    # The canonical form does not depend on the default region.
    assert normalise_phone(once, default_region="US") == once


def test_over_long_numbers_are_refused() -> None:
    """Found by the idempotence property: libphonenumber calls this German number
    valid, but it has 16 digits, more than E.164 allows."""
    with pytest.raises(InvalidPhone):
        normalise_phone("+4930000000000000")


def test_the_compiled_patterns_are_the_per_character_rules_for_every_code_point() -> None:
    """The allowed characters and the whitespace replaced by a space are tested with
    patterns compiled once: they must be exactly the rules as written per character
    (a digit of any script, any whitespace, the listed separators)."""
    allowed = [
        c
        for c in map(chr, range(sys.maxunicode + 1))
        if c.isdecimal() or c.isspace() or c in phone_module._PUNCTUATION
    ]
    assert "".join(phone_module._ALLOWED.findall("".join(allowed))) == "".join(allowed)
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    assert len("".join(phone_module._ALLOWED.findall(everything))) == len(allowed)
    for c in map(chr, range(sys.maxunicode + 1)):
        assert (phone_module._WHITESPACE.fullmatch(c) is not None) == c.isspace(), hex(ord(c))


@given(value=st.text(max_size=40))
@SETTINGS
def test_the_character_check_refuses_as_the_per_character_rule(value: str) -> None:
    expected = all(c.isdecimal() or c.isspace() or c in phone_module._PUNCTUATION for c in value)
    try:
        phone_module._check_characters(value)
    except InvalidPhone as refused:
        refused_for_characters = refused.code == "characters"
        # A + that does not start the number is refused as characters too.
        assert refused_for_characters
        assert not expected or "+" in value.lstrip()[1:]
    else:
        assert expected
