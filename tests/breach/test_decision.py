"""The Art. 33 and Art. 34 decisions on the EDPB's reference cases (Guidelines 01/2021 on
examples regarding personal data breach notification), and on Hippocrate's own: a copy
of sealed records whose keys stayed elsewhere, and a stolen session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hippocrate.breach.clock import ClockState, check_delay_reason, clock_at, deadline_of
from hippocrate.breach.decision import Circumstances, Exemption, Thresholds, decide
from hippocrate.breach.errors import DelayNotExplained, InvalidAssessment
from hippocrate.breach.severity import Band, DataCategory, Factor, Identification, Loss
from tests.breach.cases import assessment

READABLE = Circumstances(Factor(False, "the data was readable by whoever took it"))
SEALED = Circumstances(Factor(True, "sealed fields; the keys stayed in the HSM"))

H, S, F = DataCategory.SENSITIVE, DataCategory.SIMPLE, DataCategory.FINANCIAL
MAX = Identification.MAXIMUM

# Each case: the EDPB's facts as ENISA factors, then its conclusion (authority, people).
EDPB_CASES = {
    # 01: an office's files encrypted by ransomware, restored from a backup within
    # hours; no exfiltration. Register only.
    "01 ransomware, proper backup, no exfiltration": (
        assessment(S, MAX, availability=Loss.LIMITED, malicious=True),
        READABLE,
        (False, False),
    ),
    # 02: the same without a backup: days of work rebuilt by hand. The authority,
    # not the people.
    "02 ransomware without proper backup": (
        assessment(S, MAX, availability=Loss.SEVERE, malicious=True),
        READABLE,
        (True, False),
    ),
    # 03: a hospital's systems encrypted, restored from backup after two days; care
    # delayed. Both.
    "03 ransomware with backup in a hospital": (
        assessment(H, MAX, availability=Loss.LIMITED, malicious=True),
        READABLE,
        (True, True),
    ),
    # 04: ransomware without backup, and the data exfiltrated. Both.
    "04 ransomware without backup, with exfiltration": (
        assessment(F, MAX, confidentiality=Loss.SEVERE, availability=Loss.SEVERE, malicious=True),
        READABLE,
        (True, True),
    ),
    # 07: credential stuffing on a bank's site: accounts read by the attackers. Both.
    "07 credential stuffing on a banking website": (
        assessment(F, MAX, confidentiality=Loss.SEVERE, malicious=True),
        READABLE,
        (True, True),
    ),
    # 10: a stolen device whose disk was encrypted, the key not on it, a backup kept.
    # Register only.
    "10 stolen material storing encrypted data": (
        assessment(H, Identification.NEGLIGIBLE, confidentiality=Loss.LIMITED, malicious=True),
        Circumstances(Factor(True, "full-disk encryption; the key was not on the device")),
        (False, False),
    ),
    # 11: the same device unencrypted, holding patients' records. Both.
    "11 stolen material storing non-encrypted data": (
        assessment(H, MAX, confidentiality=Loss.SEVERE, malicious=True),
        READABLE,
        (True, True),
    ),
}


@pytest.mark.parametrize("name", list(EDPB_CASES))
def test_the_edpb_reference_cases(name: str) -> None:
    case, circumstances, (authority, people) = EDPB_CASES[name]
    decision = decide(case, circumstances)
    assert (decision.notify_authority, decision.notify_people) == (authority, people), (
        decision.reasons
    )


def test_a_copy_of_sealed_records_is_exception_a_even_when_identifiable() -> None:
    # Were identity readable beside the sealed fields, the risk would be very high; the
    # copy holds ciphertext only and the keys stayed in the HSM: Art. 34(3)(a).
    decision = decide(assessment(H, MAX, confidentiality=Loss.SEVERE, malicious=True), SEALED)
    assert decision.severity.band is Band.VERY_HIGH
    assert decision.notify_authority
    assert not decision.notify_people
    assert decision.exemption is Exemption.UNINTELLIGIBLE
    assert any("34(3)(a)" in reason for reason in decision.reasons)


def test_a_stolen_session_that_read_health_data_is_no_exception() -> None:
    # The platform decrypted for the session: nothing was unintelligible to its thief.
    decision = decide(assessment(H, MAX, confidentiality=Loss.SEVERE, malicious=True), READABLE)
    assert decision.notify_people
    assert decision.exemption is None


def test_encryption_does_not_excuse_a_loss_of_availability() -> None:
    # A hospital's sealed records copied and then destroyed: (a) covers the copy, not
    # the care that the destruction stops.
    hospital = assessment(
        H, MAX, confidentiality=Loss.SEVERE, availability=Loss.SEVERE, malicious=True
    )
    decision = decide(hospital, SEALED)
    assert decision.notify_people
    assert decision.exemption is None
    assert any("(a) does not apply" in reason for reason in decision.reasons)


def test_an_availability_only_incident_is_judged_on_its_own() -> None:
    outage = assessment(H, MAX, availability=Loss.LIMITED)
    decision = decide(outage, SEALED)  # the sealing is irrelevant: nothing left
    assert decision.exemption is None
    assert decision.notify_people == decision.severity.band.at_least(Band.HIGH)


def test_exceptions_b_and_c() -> None:
    case = assessment(H, MAX, confidentiality=Loss.LIMITED, malicious=True)
    mitigated = Circumstances(
        READABLE.unintelligible,
        mitigated=Factor(True, "the one recipient deleted it under a court order"),
    )
    assert decide(case, mitigated).exemption is Exemption.MITIGATED
    costly = Circumstances(
        READABLE.unintelligible,
        disproportionate=Factor(True, "no contact details are held for them"),
    )
    decision = decide(case, costly)
    assert decision.exemption is Exemption.DISPROPORTIONATE
    assert decision.public_communication
    assert not decision.notify_people


def test_the_thresholds_are_configuration() -> None:
    medium = assessment(S, MAX, confidentiality=Loss.SEVERE, malicious=True)  # SE 2
    assert decide(medium, READABLE).notify_authority
    omnibus = Thresholds(authority_from=Band.HIGH, people_from=Band.HIGH)
    assert not decide(medium, READABLE, omnibus).notify_authority
    cautious = Thresholds(authority_from=Band.LOW, people_from=Band.MEDIUM)
    assert decide(medium, READABLE, cautious).notify_people
    with pytest.raises(InvalidAssessment):
        Thresholds(authority_from=Band.HIGH, people_from=Band.MEDIUM)


def test_the_same_inputs_give_the_same_decision() -> None:
    case = assessment(H, MAX, confidentiality=Loss.SEVERE, malicious=True)
    assert decide(case, SEALED) == decide(case, SEALED)


AWARE = datetime(2025, 11, 28, 14, 0, tzinfo=UTC)


def test_the_clock_runs_72_hours_from_awareness_by_default() -> None:
    assert deadline_of(AWARE) == AWARE + timedelta(hours=72)
    running = clock_at(AWARE, AWARE + timedelta(hours=71))
    assert running.state is ClockState.RUNNING
    assert running.remaining == timedelta(hours=1)
    overdue = clock_at(AWARE, AWARE + timedelta(hours=73))
    assert overdue.state is ClockState.OVERDUE
    assert overdue.remaining < timedelta(0)
    late = clock_at(AWARE, AWARE, notified=AWARE + timedelta(days=5))
    assert late.state is ClockState.NOTIFIED_LATE
    assert clock_at(AWARE, AWARE, notified=AWARE).state is ClockState.NOTIFIED
    omnibus = clock_at(AWARE, AWARE + timedelta(hours=80), hours=96)
    assert omnibus.state is ClockState.RUNNING


def test_a_late_notification_must_say_why() -> None:
    late = AWARE + timedelta(hours=73)
    with pytest.raises(DelayNotExplained):
        check_delay_reason(AWARE, late, None)
    with pytest.raises(DelayNotExplained):
        check_delay_reason(AWARE, late, "  ")
    check_delay_reason(AWARE, late, "the scope took three days to establish")
    check_delay_reason(AWARE, AWARE + timedelta(hours=1), None)  # on time: no reason


def test_awareness_must_be_an_aware_time() -> None:
    with pytest.raises(InvalidAssessment):
        deadline_of(datetime(2025, 11, 28, 14, 0))  # noqa: DTZ001
