"""Hypothesis strategies shared by the identifiers tests."""

from __future__ import annotations

import string
from collections.abc import Callable

import phonenumbers
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from stdnum.fr.nir import calc_check_digits

from hippocrate.identifiers import InvalidIdentifier

# The first call of each library (phone metadata, IDNA tables) may exceed the default
# deadline; nothing here is slow once warm.
SETTINGS = settings(
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)

# Month codes INSEE uses: the real month, or a fictitious code when it is unknown.
REAL_MONTHS = st.integers(min_value=1, max_value=12)
FICTITIOUS_MONTHS = st.integers(min_value=20, max_value=42) | st.integers(
    min_value=50, max_value=99
)
SEXES = st.sampled_from([1, 2])
DEPARTMENTS = st.sampled_from([f"{d:02d}" for d in range(1, 96)] + ["2A", "2B", "97", "98", "99"])


def build_nir(sex: int, year: int, month: int, department: str, commune: int, order: int) -> str:
    """The 15-character NIR for these parts, key computed by python-stdnum."""
    body = f"{sex}{year:02d}{month:02d}{department}{commune:03d}{order:03d}"
    return body + calc_check_digits(body)


@st.composite
def nirs(
    draw: st.DrawFn,
    sexes: st.SearchStrategy[int] = SEXES,
    months: st.SearchStrategy[int] = REAL_MONTHS | FICTITIOUS_MONTHS,
    departments: st.SearchStrategy[str] = DEPARTMENTS,
) -> str:
    """Valid NIRs in canonical form, built from their parts."""
    return build_nir(
        draw(sexes),
        draw(st.integers(min_value=0, max_value=99)),
        draw(months),
        draw(departments),
        draw(st.integers(min_value=1, max_value=999)),
        draw(st.integers(min_value=1, max_value=999)),
    )


corsican_nirs = nirs(departments=st.sampled_from(["2A", "2B"]))

# What people put between the groups of a NIR or a phone number.
SEPARATORS = st.text(
    alphabet=st.sampled_from([" ", ".", "-", "\u00a0", "\t", "\u202f", "\u2013"]),
    max_size=3,
)


@st.composite
def scattered(draw: st.DrawFn, value: str) -> str:
    """``value`` with separators inserted anywhere and random letter case."""
    parts = [draw(SEPARATORS)]
    for char in value:
        parts.append(char.lower() if draw(st.booleans()) else char)
        parts.append(draw(SEPARATORS))
    return "".join(parts)


def _is_valid_fr(national: str) -> bool:
    return phonenumbers.is_valid_number(phonenumbers.parse(national, "FR"))


# French mobile numbers (06, 07), national writing without spaces: "0612345678".
french_mobiles = st.from_regex(r"\A0[67][0-9]{8}\Z").filter(_is_valid_fr)


def french_writings(national: str) -> list[str]:
    """Every usual writing of a French number given as ``0XXXXXXXXX``."""
    nsn = national[1:]
    pairs = " ".join(national[i : i + 2] for i in range(0, 10, 2))
    grouped_nsn = nsn[0] + " " + " ".join(nsn[i : i + 2] for i in range(1, 9, 2))
    return [
        national,
        pairs,
        pairs.replace(" ", "."),
        pairs.replace(" ", "-"),
        f"+33{nsn}",
        f"+33 {grouped_nsn}",
        f"0033{nsn}",
        f"00 33 {grouped_nsn}",
        f"+33 (0){nsn}",
        f"+33 (0){grouped_nsn}",
        f"(0){nsn}",
        f"\u00a0{pairs}\u00a0",
        "".join(chr(ord(c) + 0xFEE0) for c in f"+33{nsn}"),  # full-width
    ]


_LOCAL_CHARS = string.ascii_letters + string.digits + "_+-"
_ascii_atoms = st.text(alphabet=_LOCAL_CHARS, min_size=1, max_size=12)
# Labels with "--" in the third and fourth places are reserved (IDNA, RFC 5891 4.2.3.1).
_ascii_labels = st.from_regex(r"\A[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?\Z").filter(
    lambda label: label[2:4] != "--"
)


@st.composite
def ascii_emails(draw: st.DrawFn) -> str:
    """Syntactically valid ASCII addresses on ordinary public suffixes."""
    local = ".".join(draw(st.lists(_ascii_atoms, min_size=1, max_size=3)))
    labels = draw(st.lists(_ascii_labels, min_size=1, max_size=3))
    tld = draw(st.sampled_from(["com", "fr", "org", "net", "de", "eu", "COM", "Fr"]))
    return f"{local}@{'.'.join(labels)}.{tld}"


@st.composite
def case_swapped(draw: st.DrawFn, value: str) -> str:
    """``value`` with the case of any subset of its letters swapped."""
    return "".join(c.swapcase() if draw(st.booleans()) else c for c in value)


_unicode_local = st.text(
    alphabet=st.characters(categories=["L", "Nd", "Mn"]) | st.sampled_from("._+-"),
    min_size=1,
    max_size=20,
)
_unicode_label = st.text(
    alphabet=st.characters(categories=["Ll", "Lu", "Lt"], min_codepoint=0x61, max_codepoint=0x4FF),
    min_size=1,
    max_size=12,
)


@st.composite
def unicode_email_candidates(draw: st.DrawFn) -> str:
    """Addresses with Unicode local parts and IDN domains; some are invalid."""
    local = draw(_unicode_local)
    labels = draw(st.lists(_unicode_label, min_size=1, max_size=2))
    tld = draw(st.sampled_from(["com", "fr", "de", "рф", "ΕΛ", "中国"]))
    return f"{local}@{'.'.join(labels)}.{tld}"


def refusal(function: Callable[[str], object], value: str) -> InvalidIdentifier | None:
    """The InvalidIdentifier ``function(value)`` raises, or None if it accepts."""
    try:
        function(value)
    except InvalidIdentifier as exc:
        return exc
    return None


# Arbitrary text, plus text biased towards what the parsers look at, plus lone
# surrogates (which st.text() leaves out by default and which can reach a str via
# surrogateescape decoding).
arbitrary_text = (
    st.text()
    | st.text(alphabet=st.sampled_from("0123456789 .-+()/@aAbB2\u00a0\uff10"))
    | st.text(alphabet=st.characters(categories=["Cs", "Nd", "Zs", "Po", "L"]))
)
