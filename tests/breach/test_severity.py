"""ENISA's arithmetic (SE = DPC × EI + CB) at the band boundaries, its clamping, the
justifications it requires and the DPO's overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hippocrate.breach.errors import InvalidAssessment
from hippocrate.breach.severity import (
    Adjustment,
    Band,
    DataCategory,
    Factor,
    Identification,
    Loss,
    band_of,
    severity,
)
from tests.breach.cases import assessment

S, B, F, H = (
    DataCategory.SIMPLE,
    DataCategory.BEHAVIOURAL,
    DataCategory.FINANCIAL,
    DataCategory.SENSITIVE,
)
MAX = Identification.MAXIMUM


@pytest.mark.parametrize(
    ("category", "losses", "score", "band"),
    [
        # CB 0.75 (0.25 lost confidentiality, malice) below each boundary, 1 on it.
        (S, (Loss.LIMITED, Loss.NONE, Loss.NONE), "1.75", Band.LOW),
        (S, (Loss.SEVERE, Loss.NONE, Loss.NONE), "2.0", Band.MEDIUM),
        (B, (Loss.LIMITED, Loss.NONE, Loss.NONE), "2.75", Band.MEDIUM),
        (B, (Loss.SEVERE, Loss.NONE, Loss.NONE), "3.0", Band.HIGH),
        (F, (Loss.LIMITED, Loss.NONE, Loss.NONE), "3.75", Band.HIGH),
        (F, (Loss.SEVERE, Loss.NONE, Loss.NONE), "4.0", Band.VERY_HIGH),
    ],
)
def test_the_bands_turn_exactly_at_2_3_and_4(
    category: DataCategory, losses: tuple[Loss, Loss, Loss], score: str, band: Band
) -> None:
    confidentiality, integrity, availability = losses
    measured = severity(
        assessment(
            category,
            MAX,
            confidentiality=confidentiality,
            integrity=integrity,
            availability=availability,
            malicious=True,
        )
    )
    assert measured.score == Decimal(score)
    assert measured.band is band


def test_a_medecindirect_like_copy_is_very_high() -> None:
    # Health data (DPC 4), names and NIR beside it (EI 1), copied by intruders and used
    # for extortion (confidentiality lost to unknown recipients, malice).
    measured = severity(assessment(H, MAX, confidentiality=Loss.SEVERE, malicious=True))
    assert (measured.dpc, measured.ei, measured.cb) == (4, 1, 1)
    assert measured.score == 5
    assert measured.band is Band.VERY_HIGH
    assert measured.as_dict() == {
        "dpc": "4",
        "ei": "1",
        "cb": "1.0",
        "score": "5.0",
        "band": "very high",
    }


def test_the_same_copy_of_sealed_records_is_medium() -> None:
    # The same intrusion against a database of sealed fields: nobody is identifiable
    # from ids, times and statuses (EI 0.25), the rest unchanged.
    measured = severity(
        assessment(H, Identification.NEGLIGIBLE, confidentiality=Loss.SEVERE, malicious=True)
    )
    assert measured.score == 2
    assert measured.band is Band.MEDIUM


def test_context_adjustments_move_the_dpc_within_1_to_4() -> None:
    up = Adjustment(+2, "the volume of records makes it worse")
    down = Adjustment(-3, "the data was already public")
    assert severity(assessment(S, MAX, adjustments=(up,))).dpc == 3
    assert severity(assessment(H, MAX, adjustments=(up,))).dpc == 4  # never above 4
    assert severity(assessment(B, MAX, adjustments=(down,))).dpc == 1  # never below 1
    assert severity(assessment(H, MAX, adjustments=(down,))).dpc == 1


@pytest.mark.parametrize("delta", [0, 4, -4])
def test_an_adjustment_is_a_real_step(delta: int) -> None:
    with pytest.raises(InvalidAssessment):
        Adjustment(delta, "because")


@pytest.mark.parametrize("text", ["", "   "])
def test_every_factor_and_adjustment_needs_its_justification(text: str) -> None:
    with pytest.raises(InvalidAssessment, match="justification"):
        Factor(Loss.NONE, text)
    with pytest.raises(InvalidAssessment, match="justification"):
        Adjustment(1, text)


def test_an_override_keeps_what_it_replaced_who_and_why() -> None:
    at = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    factor = Factor(Identification.MAXIMUM, "names and NIR beside the data")
    changed = factor.overridden(
        Identification.LIMITED, reason="only pseudonymous ids were read", by="dpo-1", at=at
    )
    assert changed.value is Identification.LIMITED
    assert changed.justification == factor.justification
    (override,) = changed.overrides
    assert (override.replaced, override.by, override.at) == (Identification.MAXIMUM, "dpo-1", at)
    with pytest.raises(InvalidAssessment):
        factor.overridden(Identification.LIMITED, reason=" ", by="dpo-1", at=at)


_CATEGORIES = st.sampled_from(list(DataCategory))
_EIS = st.sampled_from(list(Identification))
_LOSSES = st.sampled_from(list(Loss))
_EI_VALUE = {
    "negligible": Fraction(1, 4),
    "limited": Fraction(1, 2),
    "significant": Fraction(3, 4),
    "maximum": Fraction(1),
}
_CB_VALUE = {"none": Fraction(0), "limited": Fraction(1, 4), "severe": Fraction(1, 2)}


@given(_CATEGORIES, _EIS, _LOSSES, _LOSSES, _LOSSES, st.booleans())
def test_the_score_is_the_formula_and_the_band_its_interval(
    category: DataCategory,
    identification: Identification,
    confidentiality: Loss,
    integrity: Loss,
    availability: Loss,
    malicious: bool,
) -> None:
    measured = severity(
        assessment(
            category,
            identification,
            confidentiality=confidentiality,
            integrity=integrity,
            availability=availability,
            malicious=malicious,
        )
    )
    expected = (
        int(category) * _EI_VALUE[identification.value]
        + _CB_VALUE[confidentiality.value]
        + _CB_VALUE[integrity.value]
        + _CB_VALUE[availability.value]
        + (Fraction(1, 2) if malicious else 0)
    )
    assert Fraction(measured.score) == expected
    bands = [Band.LOW, Band.MEDIUM, Band.HIGH, Band.VERY_HIGH]
    assert measured.band is bands[min(3, max(0, int(expected) - 1))]


def test_band_order() -> None:
    assert band_of(Decimal("5.5")).at_least(Band.HIGH)
    assert not Band.MEDIUM.at_least(Band.HIGH)
    assert Band.LOW.at_least(Band.LOW)
