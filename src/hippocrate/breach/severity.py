"""The severity of a personal data breach, by ENISA's method (working document, 2013).

    SE = DPC × EI + CB

- **DPC**, the data processing context, scores the most sensitive category of data the
  breach involves, from 1 to 4 (simple 1, behavioural 2, financial 3, sensitive 4:
  health data starts at 4), then adjusted for the context (data already public, a
  small volume, a context that makes simple data sensitive...). The score stays in
  1..4 whatever the adjustments.
- **EI**, the ease of identification of the people from the data: negligible 0.25,
  limited 0.5, significant 0.75, maximum 1.
- **CB**, the circumstances of the breach: for each of the loss of confidentiality,
  of integrity and of availability, 0, 0.25 or 0.5; plus 0.5 for malicious intent.

Bands: SE < 2 low, 2 ≤ SE < 3 medium, 3 ≤ SE < 4 high, 4 ≤ SE very high.

Everything here is a pure function of its inputs (no clock, no database), so the same
assessment always gives the same severity and a test can check the arithmetic at the
band boundaries. Every factor carries its justification, written by whoever set it;
the DPO may override any factor with a reason, and the override, its author and its
time are kept beside the value it replaced. Arithmetic is exact (``Decimal``): every
value is a multiple of 0.25, and a boundary (2, 3, 4) is never missed by a rounding.

ENISA sets no notification threshold: which bands call for the authority and for the
people is configuration (``decision.Thresholds``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

from hippocrate.breach.errors import InvalidAssessment
from hippocrate.i18n import _n

T = TypeVar("T")


class DataCategory(IntEnum):
    """ENISA's categories of data, by their basic DPC score."""

    SIMPLE = 1  # names, contact details, education, family life...
    BEHAVIOURAL = 2  # location, habits, preferences, traffic data
    FINANCIAL = 3  # income, transactions, bank statements, card numbers
    SENSITIVE = 4  # health, political, religious, sexual life, criminal


class Identification(StrEnum):
    """ENISA's ease of identification of the people, with its EI value."""

    NEGLIGIBLE = "negligible"
    LIMITED = "limited"
    SIGNIFICANT = "significant"
    MAXIMUM = "maximum"

    @property
    def value_ei(self) -> Decimal:
        return _EI[self]


_EI = {
    Identification.NEGLIGIBLE: Decimal("0.25"),
    Identification.LIMITED: Decimal("0.5"),
    Identification.SIGNIFICANT: Decimal("0.75"),
    Identification.MAXIMUM: Decimal("1"),
}


class Loss(StrEnum):
    """How far one of confidentiality, integrity or availability was lost, with its CB.

    ENISA's levels: confidentiality disclosed to a known, small set of recipients
    (0.25) or beyond, to recipients unknown (0.5); integrity altered but recoverable
    (0.25) or not (0.5); availability lost for a time (0.25) or for good (0.5).
    """

    NONE = "none"
    LIMITED = "limited"
    SEVERE = "severe"

    @property
    def value_cb(self) -> Decimal:
        return _CB[self]


_CB = {Loss.NONE: Decimal("0"), Loss.LIMITED: Decimal("0.25"), Loss.SEVERE: Decimal("0.5")}
MALICE = Decimal("0.5")


class Band(StrEnum):
    """ENISA's bands, in order of severity."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very high"

    @property
    def rank(self) -> int:
        return list(Band).index(self)

    def at_least(self, other: Band) -> bool:
        """Whether this band is ``other`` or more severe."""
        return self.rank >= other.rank


def band_of(score: Decimal) -> Band:
    if score < 2:
        return Band.LOW
    if score < 3:
        return Band.MEDIUM
    if score < 4:
        return Band.HIGH
    return Band.VERY_HIGH


@dataclass(frozen=True)
class Override:
    """A DPO's change to one factor: the value it replaces, why, by whom, when."""

    replaced: Any
    reason: str
    by: str
    at: datetime

    def __post_init__(self) -> None:
        _justified(self.reason, _n("an override needs its reason"))
        _justified(self.by, _n("an override needs its author"))


@dataclass(frozen=True)
class Factor(Generic[T]):
    """One input of the severity: its value and why, and any override of it."""

    value: T
    justification: str
    overrides: tuple[Override, ...] = field(default=())

    def __post_init__(self) -> None:
        _justified(self.justification, _n("a factor needs its written justification"))

    def overridden(self, value: T, *, reason: str, by: str, at: datetime) -> Factor[T]:
        """This factor set to ``value`` by a DPO, the former value kept in its history."""
        change = Override(replaced=self.value, reason=reason, by=by, at=at)
        return replace(self, value=value, overrides=(*self.overrides, change))


@dataclass(frozen=True)
class Adjustment:
    """A change of the DPC for the context (+1, -1...), with its written justification."""

    delta: int
    justification: str

    def __post_init__(self) -> None:
        if self.delta == 0 or not -3 <= self.delta <= 3:
            raise InvalidAssessment(_n("a context adjustment is between -3 and +3, never 0"))
        _justified(self.justification, _n("a context adjustment needs its written justification"))


@dataclass(frozen=True)
class Assessment:
    """The inputs of ENISA's formula, each justified."""

    category: Factor[DataCategory]
    adjustments: tuple[Adjustment, ...]
    identification: Factor[Identification]
    confidentiality: Factor[Loss]
    integrity: Factor[Loss]
    availability: Factor[Loss]
    malicious: Factor[bool]


@dataclass(frozen=True)
class Severity:
    """What the formula gives: each term and the band."""

    dpc: Decimal
    ei: Decimal
    cb: Decimal
    score: Decimal
    band: Band

    def as_dict(self) -> dict[str, str]:
        return {
            "dpc": str(self.dpc),
            "ei": str(self.ei),
            "cb": str(self.cb),
            "score": str(self.score),
            "band": self.band.value,
        }


def dpc_of(category: DataCategory, adjustments: tuple[Adjustment, ...]) -> Decimal:
    """The basic score of ``category`` with the adjustments, kept within 1..4."""
    adjusted = int(category) + sum(a.delta for a in adjustments)
    return Decimal(min(4, max(1, adjusted)))


def cb_of(
    confidentiality: Loss, integrity: Loss, availability: Loss, *, malicious: bool
) -> Decimal:
    """The circumstances of the breach: the three losses, and malice."""
    total = confidentiality.value_cb + integrity.value_cb + availability.value_cb
    return total + (MALICE if malicious else Decimal(0))


def severity(assessment: Assessment) -> Severity:
    """ENISA's SE of ``assessment``, with each term, exact."""
    dpc = dpc_of(assessment.category.value, assessment.adjustments)
    ei = assessment.identification.value.value_ei
    cb = cb_of(
        assessment.confidentiality.value,
        assessment.integrity.value,
        assessment.availability.value,
        malicious=assessment.malicious.value,
    )
    score = dpc * ei + cb
    return Severity(dpc=dpc, ei=ei, cb=cb, score=score, band=band_of(score))


def _justified(text: str, refusal: str) -> None:
    if not text or not text.strip():
        raise InvalidAssessment(refusal)
