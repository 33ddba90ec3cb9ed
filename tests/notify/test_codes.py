"""Verification codes: the documented shape, every character of the alphabet, drawn
uniformly (each character carries its 5 bits, 40 bits a code)."""

from __future__ import annotations

import re
from collections import Counter

from hippocrate.notify.service import CODE_ALPHABET, new_code, normalise_code


def test_a_code_has_the_documented_shape_and_reads_back() -> None:
    for _ in range(200):
        code = new_code()
        assert re.fullmatch(f"[{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}}", code), code
        assert normalise_code(code.lower()) == code.replace("-", "")


def test_every_character_is_drawn_uniformly_at_every_position() -> None:
    draws = 8_000
    counts = [Counter[str]() for _ in range(8)]
    for _ in range(draws):
        for position, character in enumerate(new_code().replace("-", "")):
            counts[position][character] += 1
    expected = draws / len(CODE_ALPHABET)
    for seen in counts:
        assert set(seen) == set(CODE_ALPHABET)
        # Chi-square with 31 degrees of freedom: above 80 has odds of about 3 in 10^6.
        chi2 = sum((seen[c] - expected) ** 2 / expected for c in CODE_ALPHABET)
        assert chi2 < 80, chi2
