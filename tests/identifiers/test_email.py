"""Email addresses: canonical form, refusals."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_domain_name
from hypothesis import given

from hippocrate.identifiers import InvalidEmail, normalise_email
from hippocrate.identifiers import email as email_module
from tests.identifiers.strategies import (
    SETTINGS,
    ascii_emails,
    case_swapped,
    unicode_email_candidates,
)


@pytest.mark.parametrize(
    "written",
    [
        "jean.dupont@example.com",
        "Jean.Dupont@Example.COM",
        "JEAN.DUPONT@EXAMPLE.COM",
        "  jean.dupont@example.com  ",
        "\tjean.dupont@example.com\r\n",
        "\u00a0jean.dupont@example.com\u3000",  # no-break and ideographic spaces
        # Full-width letters and @ (East Asian input methods); NFKC makes them ASCII.
        "\uff2a\uff45\uff41\uff4e.dupont\uff20example.com",
    ],
)
def test_writings_of_one_address_give_one_canonical_form(written: str) -> None:
    assert normalise_email(written) == "jean.dupont@example.com"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("jean@bücher.de", "jean@bücher.de"),
        ("jean@BÜCHER.DE", "jean@bücher.de"),
        ("jean@xn--bcher-kva.de", "jean@bücher.de"),  # IDNA ASCII form
        ("jean@XN--BCHER-KVA.DE", "jean@bücher.de"),
        ("jean@bu\u0308cher.de", "jean@bücher.de"),  # decomposed ü
        ("Éloïse@Example.fr", "éloïse@example.fr"),
        ("E\u0301loi\u0308se@example.fr", "éloïse@example.fr"),  # decomposed
        ("ÉLOÏSE@example.fr", "éloïse@example.fr"),
        # Case folding of the local part: ß folds to ss.
        ("Strauß@example.de", "strauss@example.de"),
        ("STRAU\u1e9e@example.de", "strauss@example.de"),  # capital sharp s
        ("\u212aelvin@example.com", "kelvin@example.com"),  # Kelvin sign
        ("\u0390@example.gr", "\u0390@example.gr"),  # NFKC recomposes its fold
        ("STRAUSS@example.de", "strauss@example.de"),
        # The domain is not case-folded: straße.de and strasse.de are two domains.
        ("jean@Straße.de", "jean@straße.de"),
        ("jean@xn--strae-oqa.de", "jean@straße.de"),
        ("jean@strasse.de", "jean@strasse.de"),
        ("jean+rdv@example.com", "jean+rdv@example.com"),  # sub-address kept
    ],
)
def test_unicode_and_idn(written: str, canonical: str) -> None:
    assert normalise_email(written) == canonical


@pytest.mark.parametrize(
    "written",
    [
        "",
        "   ",
        "jean",
        "jean@",
        "@example.com",
        "jean@@example.com",
        "jean..dupont@example.com",
        ".jean@example.com",
        "jean@example",
        "jean@localhost",
        "jean@example.test",  # special-use domain
        "jean@[192.0.2.1]",
        '"jean dupont"@example.com',
        "Jean Dupont <jean@example.com>",
        "jean dupont@example.com",
        "jean@exa mple.com",
        "jean@-example.com",
        "jean\u202e@example.com",  # bidi override
        "jean\ud800@example.com",  # lone surrogate
    ],
)
def test_invalid_addresses_are_refused_with_the_validators_reason(written: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalise_email(written)
    assert caught.value.code == "syntax"
    assert caught.value.field == "email"
    assert str(caught.value)
    # Same reason as email-validator gives for the (already lowercase) input.
    with pytest.raises(EmailNotValidError) as direct:
        validate_email(written.strip().lower(), check_deliverability=False)
    assert str(caught.value) == str(direct.value)


def _address_of_octets(total: int) -> str:
    local = "j" * 64
    domain_length = total - len(local) - 1
    labels = []
    remaining = domain_length - len(".com")
    while remaining > 0:
        label = min(63, remaining)
        if remaining - label == 1:  # a lone dot cannot follow
            label -= 2
        labels.append("a" * label)
        remaining -= label + 1
    address = f"{local}@{'.'.join(labels)}.com"
    assert len(address) == total, len(address)
    return address


def test_254_octets_is_the_limit() -> None:
    longest = _address_of_octets(254)
    assert normalise_email(longest) == longest
    assert normalise_email(longest.upper()) == longest
    with pytest.raises(InvalidEmail) as caught:
        normalise_email(_address_of_octets(255))
    assert caught.value.code == "too_long"


def test_limit_counts_utf8_octets() -> None:
    # 2 octets per é: 127 of them, "@" and "example.com" make 266 octets.
    with pytest.raises(InvalidEmail) as caught:
        normalise_email("é" * 127 + "@example.com")
    assert caught.value.code == "too_long"


def test_huge_input_is_refused_before_work() -> None:
    with pytest.raises(InvalidEmail) as caught:
        normalise_email("a" * 100_000 + "@example.com")
    assert caught.value.code == "too_long"


def test_non_str_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        normalise_email(b"jean@example.com")  # type: ignore[arg-type]


@given(address=ascii_emails())
@SETTINGS
def test_ascii_addresses_normalise_to_lowercase(address: str) -> None:
    assert normalise_email(address) == address.lower()


@given(pair=ascii_emails().flatmap(lambda a: case_swapped(a).map(lambda s: (a, s))))
@SETTINGS
def test_case_changes_never_change_the_canonical_form(pair: tuple[str, str]) -> None:
    address, swapped = pair
    assert normalise_email(swapped) == normalise_email(address)


@given(address=ascii_emails() | unicode_email_candidates())
@SETTINGS
def test_normalise_is_idempotent(address: str) -> None:
    try:
        once = normalise_email(address)
    except InvalidEmail:
        return
    assert normalise_email(once) == once
    assert len(once.encode()) <= 254
    local, _, _domain = once.rpartition("@")
    assert local == unicodedata.normalize("NFKC", local.casefold())


def _uncached(address: str) -> str | InvalidEmail:
    """``normalise_email`` with email-validator's own domain check, as if uncached."""
    module = sys.modules["email_validator.validate_email"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "validate_email_domain_name", validate_email_domain_name)
        try:
            return normalise_email(address)
        except InvalidEmail as refused:
            return refused


def test_the_library_checks_domains_through_the_cache() -> None:
    module = sys.modules["email_validator.validate_email"]
    assert module.validate_email_domain_name is email_module._cached_domain_check
    before = email_module._checked_domain.cache_info().hits
    normalise_email("a@cache-probe.example.com")
    normalise_email("b@cache-probe.example.com")
    assert email_module._checked_domain.cache_info().hits > before


@pytest.mark.parametrize(
    "written",
    [
        "jean@bücher.de",
        "jean@XN--BCHER-KVA.DE",
        "jean@Straße.de",
        "jean@localhost",  # special-use: refused, each time
        "jean@example..com",
        "jean@-example.com",
        "jean@" + "a" * 64 + ".com",
        "jean@⒈example.com",
    ],
)
def test_the_cached_domain_check_answers_as_the_library(written: str) -> None:
    for _ in range(2):  # the second answer comes from the cache (or, refused, not)
        cached: str | InvalidEmail
        try:
            cached = normalise_email(written)
        except InvalidEmail as refused:
            cached = refused
        plain = _uncached(written)
        if isinstance(plain, InvalidEmail):
            assert isinstance(cached, InvalidEmail)
            assert (str(cached), cached.code) == (str(plain), plain.code)
        else:
            assert cached == plain


@given(address=ascii_emails() | unicode_email_candidates())
@SETTINGS
def test_the_cached_domain_check_never_changes_an_answer(address: str) -> None:
    first = _uncached(address)
    for _ in range(2):
        try:
            again: str | InvalidEmail = normalise_email(address)
        except InvalidEmail as refused:
            again = refused
        if isinstance(first, InvalidEmail):
            assert isinstance(again, InvalidEmail)
            assert str(again) == str(first)
        else:
            assert again == first
