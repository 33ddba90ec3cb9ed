"""Whom a breach must be told: the authority (Art. 33) and the people (Art. 34).

- **Art. 33**: the controller notifies the supervisory authority (the CNIL) unless the
  breach is unlikely to result in a risk to people. Whatever the answer, the incident
  stays in the register (Art. 33(5)).
- **Art. 34**: the people are told when the risk to them is high, unless
  (a) the data was unintelligible to whoever got it (encrypted with keys they did not
  get); (b) measures taken since ensure the high risk is no longer likely to
  materialise; (c) telling each would take disproportionate effort, in which case a
  public communication replaces the notices.

Which ENISA bands count as "a risk" and "a high risk" is configuration
(:class:`Thresholds`): ENISA sets no threshold. The defaults follow its own reading
of the bands ("low": people will not be affected or meet a few inconveniences; "high":
significant consequences): the authority from medium, the people from high. The
Digital Omnibus proposal (the authority only for a high risk) is
``Thresholds(authority_from=Band.HIGH)``.

Exception (a) is judged on the risk that remains once the unintelligible data is set
aside: a copy of sealed records whose keys stayed in the HSM qualifies; a stolen
session, which reads through the platform and so decrypts, does not; and encryption
does nothing for a loss of availability or integrity, so an incident that also lost
those is judged on them alone. Pure functions: the same inputs give the same decision,
with the reasons for it in words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from hippocrate.breach.errors import InvalidAssessment
from hippocrate.breach.severity import (
    Assessment,
    Band,
    Factor,
    Loss,
    Severity,
    severity,
)
from hippocrate.i18n import _n


@dataclass(frozen=True)
class Thresholds:
    """The lowest band that calls for the authority, and for the people."""

    authority_from: Band = Band.MEDIUM
    people_from: Band = Band.HIGH

    def __post_init__(self) -> None:
        if self.people_from.rank < self.authority_from.rank:
            raise InvalidAssessment(
                _n("the people cannot be told from a lower band than the authority")
            )


class Exemption(StrEnum):
    """The exceptions of Art. 34(3)."""

    UNINTELLIGIBLE = "a"
    MITIGATED = "b"
    DISPROPORTIONATE = "c"


@dataclass(frozen=True)
class Circumstances:
    """What the Art. 34 exceptions turn on, each justified.

    ``unintelligible``: every datum whose confidentiality was lost was sealed with keys
    the intruder did not get. ``mitigated``: measures taken since make the high risk
    unlikely (Art. 34(3)(b)). ``disproportionate``: telling each person would take
    disproportionate effort (Art. 34(3)(c)); a public communication is then due.
    """

    unintelligible: Factor[bool]
    mitigated: Factor[bool] | None = None
    disproportionate: Factor[bool] | None = None


@dataclass(frozen=True)
class Decision:
    severity: Severity
    notify_authority: bool
    notify_people: bool
    exemption: Exemption | None
    public_communication: bool
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity.as_dict(),
            "notify_authority": self.notify_authority,
            "notify_people": self.notify_people,
            "exemption": self.exemption.value if self.exemption else None,
            "public_communication": self.public_communication,
            "reasons": list(self.reasons),
        }


def decide(
    assessment: Assessment,
    circumstances: Circumstances,
    thresholds: Thresholds | None = None,
) -> Decision:
    """The Art. 33 and Art. 34 answers for ``assessment``, with their reasons."""
    thresholds = thresholds or Thresholds()
    measured = severity(assessment)
    reasons: list[str] = [f"ENISA severity {measured.score}: {measured.band.value}"]

    authority = measured.band.at_least(thresholds.authority_from)
    if authority:
        reasons.append(
            f"a risk to people (band {measured.band.value}, threshold "
            f"{thresholds.authority_from.value}): the authority is notified (Art. 33)"
        )
    else:
        reasons.append(
            f"unlikely to result in a risk (band {measured.band.value} below "
            f"{thresholds.authority_from.value}): documented in the register only "
            "(Art. 33(5))"
        )

    if not measured.band.at_least(thresholds.people_from):
        reasons.append(
            f"no high risk (band {measured.band.value} below "
            f"{thresholds.people_from.value}): no notice is required (Art. 34(1))"
        )
        return Decision(measured, authority, False, None, False, tuple(reasons))

    exemption = _exemption(assessment, circumstances, thresholds, reasons)
    if exemption is None:
        reasons.append("a high risk and no exception applies: every person is told (Art. 34)")
        return Decision(measured, authority, True, None, False, tuple(reasons))
    public = exemption is Exemption.DISPROPORTIONATE
    return Decision(measured, authority, False, exemption, public, tuple(reasons))


def _exemption(
    assessment: Assessment,
    circumstances: Circumstances,
    thresholds: Thresholds,
    reasons: list[str],
) -> Exemption | None:
    lost_confidentiality = assessment.confidentiality.value is not Loss.NONE
    if circumstances.unintelligible.value and lost_confidentiality:
        why = circumstances.unintelligible.justification
        other_losses = (assessment.integrity.value, assessment.availability.value)
        if all(loss is Loss.NONE for loss in other_losses):
            reasons.append(
                f"Art. 34(3)(a): the data that left was unintelligible ({why}) and "
                "nothing else was lost"
            )
            return Exemption.UNINTELLIGIBLE
        remaining = severity(_without_confidentiality(assessment))
        if not remaining.band.at_least(thresholds.people_from):
            reasons.append(
                f"Art. 34(3)(a): the data that left was unintelligible ({why}); the loss "
                f"of integrity or availability alone is {remaining.band.value}"
            )
            return Exemption.UNINTELLIGIBLE
        reasons.append(
            "the data that left was unintelligible, but the loss of integrity or "
            f"availability alone is a high risk ({remaining.band.value}): (a) does not apply"
        )
    if circumstances.mitigated is not None and circumstances.mitigated.value:
        reasons.append(f"Art. 34(3)(b): {circumstances.mitigated.justification}")
        return Exemption.MITIGATED
    if circumstances.disproportionate is not None and circumstances.disproportionate.value:
        reasons.append(
            f"Art. 34(3)(c): {circumstances.disproportionate.justification}; a public "
            "communication informs the people instead"
        )
        return Exemption.DISPROPORTIONATE
    return None


def _without_confidentiality(assessment: Assessment) -> Assessment:
    """The assessment with the unintelligible data set aside: what remains is the loss
    of integrity or availability, which encryption does not cure."""
    return replace(
        assessment,
        confidentiality=Factor(Loss.NONE, "set aside: unintelligible to the intruder"),
    )
