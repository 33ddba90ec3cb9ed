"""The incident register on a real database (SQLite and PostgreSQL): every change on the
timeline and in the trail, stale and invalid changes refused whole, the notification's
phases and clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor
from hippocrate.breach import service
from hippocrate.breach.clock import ClockState
from hippocrate.breach.drill import STOLEN_SESSIONS
from hippocrate.breach.errors import (
    DelayNotExplained,
    IncidentClosed,
    InvalidIncident,
    NotificationOutOfOrder,
    StaleIncident,
)
from hippocrate.breach.models import Incident, IncidentChange, IncidentOrigin, Phase
from hippocrate.breach.schemas import AssessmentIn, IncidentDetails, missing
from hippocrate.tags import Tag
from tests.conftest import Store

T0 = datetime(2025, 11, 28, 14, 0, tzinfo=UTC)
DPO = Actor(role="dpo", account_id=uuid.uuid4())
POLICY = service.Policy()


def _open(store: Store, **details: object) -> uuid.UUID:
    with store.sessions() as session, session.begin():
        incident = service.open_incident(
            session=session,
            actor=DPO,
            origin=IncidentOrigin.DPO,
            awareness_at=T0,
            details=IncidentDetails.model_validate(details),
            now=T0,
        )
        return incident.id


def _events(store: Store, incident_id: uuid.UUID) -> list[str]:
    with store.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        return [e.action for e in rows if f"incident:{incident_id}" in e.resources]


def test_every_change_is_on_the_timeline_and_in_the_trail(store: Store) -> None:
    incident_id = _open(store, general={"title": "Sessions volées"})
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        assert incident.reference.startswith("INC-20251128-")
        service.amend(
            session=session,
            actor=DPO,
            incident=incident,
            version=1,
            patch={"data": {"people_count": 300, "data_categories": ["health", "nir"]}},
            now=T0 + timedelta(hours=1),
        )
        assert incident.version == 2
    with store.sessions() as session:
        incident = service.get(session, incident_id)
        lines = service.timeline_of(session, incident)
        assert [line.action for line in lines] == ["opened", "amended"]
        assert lines[1].changes == {
            "data.data_categories": [[], ["health", "nir"]],
            "data.people_count": [None, 300],
        }
        assert lines[1].actor_id == DPO.account_id
    assert _events(store, incident_id) == [
        Tag.BREACH_INCIDENT_OPENED,
        Tag.BREACH_INCIDENT_AMENDED,
    ]


def test_a_change_made_on_a_stale_version_or_invalid_changes_nothing(store: Store) -> None:
    incident_id = _open(store)
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        service.amend(
            session=session,
            actor=DPO,
            incident=incident,
            version=1,
            patch={"consequences": "hameçonnage ciblé"},
            now=T0,
        )
    for version, patch, error in (
        (1, {"consequences": "écrasé"}, StaleIncident),  # another DPO's version 1
        (2, {"data": {"people_count": -1}}, InvalidIncident),
        (2, {"nature": {"unknown_field": True}}, InvalidIncident),
        (2, {"contacts": {"dpo": {"email": "not an address"}}}, InvalidIncident),
    ):
        with store.sessions() as session, pytest.raises(error), session.begin():
            service.amend(
                session=session,
                actor=DPO,
                incident=service.get(session, incident_id),
                version=version,
                patch=patch,
                now=T0,
            )
    with store.sessions() as session:
        incident = service.get(session, incident_id)
        assert incident.version == 2
        assert incident.details["consequences"] == "hameçonnage ciblé"
        assert len(service.timeline_of(session, incident)) == 2


def test_moving_the_awareness_needs_a_note_and_keeps_the_former_time(store: Store) -> None:
    incident_id = _open(store)
    earlier = T0 - timedelta(hours=20)
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        with pytest.raises(InvalidIncident):
            service.amend(
                session=session,
                actor=DPO,
                incident=incident,
                version=1,
                patch={},
                awareness_at=earlier,
                now=T0,
            )
        service.amend(
            session=session,
            actor=DPO,
            incident=incident,
            version=1,
            patch={},
            awareness_at=earlier,
            note="the host's alert of the 27th was read late",
            now=T0,
        )
    with store.sessions() as session:
        incident = service.get(session, incident_id)
        assert incident.awareness_at == earlier
        last = service.timeline_of(session, incident)[-1]
        assert last.changes["awareness_at"] == [T0.isoformat(), earlier.isoformat()]
        clock = service.clock_of(session, incident, T0 + timedelta(hours=53), POLICY)
        assert clock.state is ClockState.OVERDUE  # 73 h since the corrected awareness


ASSESSMENT = STOLEN_SESSIONS  # the drill's assessment of stolen sessions


def test_the_assessment_gives_the_decision_and_the_notification_its_phases(store: Store) -> None:
    incident_id = _open(store)
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        decision = service.assess(
            session=session,
            actor=DPO,
            incident=incident,
            version=1,
            assessment=AssessmentIn.model_validate(ASSESSMENT),
            now=T0,
            policy=POLICY,
        )
        assert decision.severity.band.value == "very high"
        assert decision.notify_authority
        assert decision.notify_people
    late = T0 + timedelta(hours=80)
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        with pytest.raises(NotificationOutOfOrder):
            service.notify_authority(
                session=session,
                actor=DPO,
                incident=incident,
                version=2,
                phase=Phase.COMPLEMENTARY,
                sent_at=T0,
                content={},
                receipt_reference=None,
                delay_reason=None,
                now=late,
                policy=POLICY,
            )
        with pytest.raises(DelayNotExplained):
            service.notify_authority(
                session=session,
                actor=DPO,
                incident=incident,
                version=2,
                phase=Phase.INITIAL,
                sent_at=late,
                content={},
                receipt_reference=None,
                delay_reason=None,
                now=late,
                policy=POLICY,
            )
        sent = service.notify_authority(
            session=session,
            actor=DPO,
            incident=incident,
            version=2,
            phase=Phase.INITIAL,
            sent_at=late,
            content={"general": {"title": "Sessions volées"}},
            receipt_reference="CNIL-2025-1234",
            delay_reason="scope computed late",
            now=late,
            policy=POLICY,
        )
        assert len(sent.digest) == 64
    with store.sessions() as session, session.begin():
        incident = service.get(session, incident_id)
        clock = service.clock_of(session, incident, late, POLICY)
        assert clock.state is ClockState.NOTIFIED_LATE
        service.close(
            session=session,
            actor=DPO,
            incident=incident,
            version=3,
            note="handled",
            now=late,
        )
    with store.sessions() as session, pytest.raises(IncidentClosed), session.begin():
        service.amend(
            session=session,
            actor=DPO,
            incident=service.get(session, incident_id),
            version=4,
            patch={"consequences": "x"},
            now=late,
        )


def test_containments_during_one_attack_land_in_one_incident(store: Store) -> None:
    guard = Actor(role="practitioner", account_id=uuid.uuid4())
    other = uuid.uuid4()
    with store.sessions() as session, session.begin():
        first = service.incident_for_containment(
            session=session,
            actor=guard,
            principal=guard.account_id,
            kind="account",
            reason="breadth: 21 patients in 1 hour",
            now=T0,
        )
    with store.sessions() as session, session.begin():
        again = service.incident_for_containment(
            session=session,
            actor=guard,
            principal=other,
            kind="account",
            reason="enumeration: 31 refused ids",
            now=T0 + timedelta(hours=2),
        )
        assert again.id == first.id
    with store.sessions() as session, session.begin():
        later = service.incident_for_containment(
            session=session,
            actor=guard,
            principal=other,
            kind="account",
            reason="honeytoken",
            now=T0 + timedelta(days=2),
        )
        assert later.id != first.id
    with store.sessions() as session:
        incident = service.get(session, first.id)
        principals = {p.id for p in service.details_of(incident).nature.principals}
        assert principals == {guard.account_id, other}
        assert incident.origin is IncidentOrigin.GUARD
        assert (
            session.scalar(
                select(IncidentChange.seq)
                .where(IncidentChange.incident_id == first.id)
                .order_by(IncidentChange.seq.desc())
                .limit(1)
            )
            == 2
        )
        assert len(session.scalars(select(Incident)).all()) == 2


def test_missing_lists_the_art_33_3_items_not_given() -> None:
    assert "nature.cause" in missing(IncidentDetails())
    full = IncidentDetails.model_validate(
        {
            "nature": {"cause": "stolen session"},
            "data": {
                "people_categories": ["patients"],
                "people_count": 20,
                "records_count": 20,
                "data_categories": ["health"],
            },
            "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
            "consequences": "phishing",
            "measures": {"taken": "sessions ended"},
        }
    )
    assert missing(full) == []


def test_two_changes_made_at_once_on_one_version_the_second_is_refused(store: Store) -> None:
    """Two DPOs read version 1 and change it at the same time: the first wins, the
    second is refused whole (never written over the first unseen)."""
    incident_id = _open(store)
    first, second = store.sessions(), store.sessions()
    try:
        a = service.get(first, incident_id)
        b = service.get(second, incident_id)
        assert a.version == b.version == 1
        service.amend(
            session=first,
            actor=DPO,
            incident=a,
            version=1,
            patch={"consequences": "première version"},
            now=T0,
        )
        first.commit()
        with pytest.raises(StaleIncident):
            service.amend(
                session=second,
                actor=DPO,
                incident=b,
                version=1,
                patch={"consequences": "écrase la première"},
                now=T0,
            )
        second.rollback()
    finally:
        first.close()
        second.close()
    with store.sessions() as session:
        incident = service.get(session, incident_id)
        assert incident.version == 2
        assert incident.details["consequences"] == "première version"
        assert [line.action for line in service.timeline_of(session, incident)] == [
            "opened",
            "amended",
        ]
