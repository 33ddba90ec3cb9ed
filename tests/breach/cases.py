"""Building ENISA assessments in tests, each factor with its justification."""

from __future__ import annotations

from hippocrate.breach.severity import (
    Adjustment,
    Assessment,
    DataCategory,
    Factor,
    Identification,
    Loss,
)


def assessment(
    category: DataCategory,
    identification: Identification,
    *,
    confidentiality: Loss = Loss.NONE,
    integrity: Loss = Loss.NONE,
    availability: Loss = Loss.NONE,
    malicious: bool = False,
    adjustments: tuple[Adjustment, ...] = (),
) -> Assessment:
    return Assessment(
        category=Factor(category, "the most sensitive data involved"),
        adjustments=adjustments,
        identification=Factor(identification, "what the data says of who they are"),
        confidentiality=Factor(confidentiality, "who could read it"),
        integrity=Factor(integrity, "whether it was altered"),
        availability=Factor(availability, "whether it could be used"),
        malicious=Factor(malicious, "who did it and why"),
    )
